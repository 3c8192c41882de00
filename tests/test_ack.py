"""The acknowledgement decision: any quarantine wins, else any not-yet, else ack."""

from __future__ import annotations

import itertools

import pytest
from hypothesis import given
from hypothesis import strategies as st

from faxflow.ack import decide, describe
from faxflow.types import Verdict, Vote

A, N, Q = Vote.ack("fine"), Vote.not_yet("smtp down"), Vote.quarantine("corrupt pdf")


@pytest.mark.parametrize(("votes", "expected"), [
    ({}, Verdict.ACK),
    ({"a": None, "b": None}, Verdict.ACK),
    ({"a": A}, Verdict.ACK),
    ({"a": A, "b": None}, Verdict.ACK),
    ({"a": A, "b": N}, Verdict.NOT_YET),
    ({"a": N, "b": Q}, Verdict.QUARANTINE),
    ({"a": A, "b": Q, "c": N}, Verdict.QUARANTINE),
])
def test_decide(votes: dict[str, Vote | None], expected: Verdict) -> None:
    assert decide(votes).verdict is expected


def test_reasons_name_the_voters_of_the_winning_verdict_only() -> None:
    decision = decide({"email": N, "ocr": Q, "folder": A, "rules": Q})
    assert decision.reasons == ("ocr: corrupt pdf", "rules: corrupt pdf")
    assert decision.votes["email"] is N


@given(st.lists(st.sampled_from([A, N, Q, None]), max_size=6))
def test_order_of_votes_never_changes_the_outcome(votes: list[Vote | None]) -> None:
    outcomes = {decide({f"p{i}": v for i, v in enumerate(perm)}).verdict
                for perm in itertools.islice(itertools.permutations(votes), 50)}
    assert len(outcomes) <= 1


def test_describe_lists_every_vote() -> None:
    line = describe(decide({"ocr": None, "email": N}))
    assert line.startswith("not-yet because email: smtp down")
    assert "ocr=abstain" in line and "email=not-yet" in line
