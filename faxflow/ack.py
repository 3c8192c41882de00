"""The acknowledgement decision: one pure function over every plugin's vote.

Any quarantine wins (a fax nobody can process must leave the queue, kept with its reason);
else any not-yet leaves the fax locked so it comes back after the lock timeout; else the fax
is acknowledged. Abstentions (None) do not count. Like datasette's permission vote: any veto
wins, so the order plugins run in never changes the outcome.
"""

from __future__ import annotations

from collections.abc import Mapping

from faxflow.types import Decision, Verdict, Vote


def decide(votes: Mapping[str, Vote | None]) -> Decision:
    cast = {name: vote for name, vote in votes.items() if vote is not None}
    for verdict in (Verdict.QUARANTINE, Verdict.NOT_YET):
        reasons = tuple(f"{name}: {vote.reason}" if vote.reason else name
                        for name, vote in sorted(cast.items()) if vote.verdict is verdict)
        if reasons:
            return Decision(verdict, reasons, dict(votes))
    return Decision(Verdict.ACK, (), dict(votes))


def describe(decision: Decision) -> str:
    """One log-friendly line with the decision and every vote."""
    shown = ", ".join(f"{name}={vote.verdict.value if vote else 'abstain'}"
                      for name, vote in sorted(decision.votes.items()))
    why = f" because {'; '.join(decision.reasons)}" if decision.reasons else ""
    return f"{decision.verdict.value}{why} [votes: {shown}]"
