"""The shared delivery helpers (`faxflow.delivery`) on their own."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from pathlib import Path

import pytest

from faxflow import delivery

FAST = delivery.RetryPolicy(attempts=3, base_delay=0.0)


def no_sleep(seconds: float) -> None:
    pass


def test_retry_repeats_transient_then_succeeds() -> None:
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise delivery.transient("busy")
        return "ok"

    assert delivery.retry(step, FAST, sleep=no_sleep) == "ok"
    assert len(calls) == 3


def test_retry_gives_up_and_never_repeats_sent_or_permanent() -> None:
    for error in (delivery.permanent("no"), delivery.transient("lost", sent=True)):
        tries: list[int] = []

        def step(error: delivery.DeliveryError = error, tries: list[int] = tries) -> None:
            tries.append(1)
            raise error

        with pytest.raises(delivery.DeliveryError):
            delivery.retry(step, FAST, sleep=no_sleep)
        assert len(tries) == 1
    calls: list[int] = []

    def always() -> None:
        calls.append(1)
        raise delivery.transient("down")

    with pytest.raises(delivery.DeliveryError):
        delivery.retry(always, FAST, sleep=no_sleep)
    assert len(calls) == 3


def test_retry_honours_retry_after_and_stops_on_long_ones() -> None:
    waits: list[float] = []
    calls: list[int] = []

    def step() -> str:
        calls.append(1)
        if len(calls) == 1:
            raise delivery.transient("429", retry_after=2)
        return "ok"

    assert delivery.retry(step, FAST, sleep=waits.append) == "ok"
    assert waits == [2]

    def slow() -> None:
        raise delivery.transient("429", retry_after=3600)

    with pytest.raises(delivery.DeliveryError):
        delivery.retry(slow, FAST, sleep=waits.append)
    assert waits == [2]


def test_backoff_is_bounded_full_jitter() -> None:
    policy = delivery.RetryPolicy(base_delay=1.0, max_delay=4.0)
    for attempt in range(1, 8):
        for _ in range(50):
            assert 0 <= policy.delay(attempt) <= min(4.0, 2 ** (attempt - 1))


def test_create_once_looks_before_creating_again() -> None:
    store: list[str] = []

    def create() -> str:
        store.append("ticket")
        if len(store) == 1:
            raise delivery.transient("answer lost", sent=True)
        return "new"

    def find() -> str | None:
        return "found" if store else None

    assert delivery.create_once(find, create, uncertain=False, policy=FAST,
                                sleep=no_sleep) == "found"
    assert store == ["ticket"]


def test_create_once_checks_first_when_uncertain() -> None:
    created: list[int] = []

    def create() -> str:
        created.append(1)
        return "new"

    assert delivery.create_once(lambda: "old", create, uncertain=True, sleep=no_sleep) == "old"
    assert created == []
    assert delivery.create_once(lambda: "old", create, uncertain=False, sleep=no_sleep) == "new"


def test_retry_after_parsing() -> None:
    assert delivery.retry_after_seconds("120") == 120
    assert delivery.retry_after_seconds(None) is None
    assert delivery.retry_after_seconds("soon") is None
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=60), usegmt=True)
    seconds = delivery.retry_after_seconds(later)
    assert seconds is not None and 50 < seconds <= 60


@pytest.mark.parametrize("text", [
    "..", ".", "../x", "a/b", "a\\b", "\x00", "\r\n", "CON", "con.txt", "Lpt9", " . ",
    "\u202e", "\uff0e\uff0e", "x" * 1000, "\u00fc" * 1000, "\udcff", "a:b*c?d\"e<f>g|h",
])
def test_safe_component(text: str) -> None:
    out = delivery.safe_component(text)
    assert out and out not in (".", "..")
    assert not any(c in out for c in "/\\\x00\r\n:*?\"<>|")
    assert len(out.encode()) <= delivery.MAX_COMPONENT_BYTES
    assert out.upper().split(".")[0] not in ("CON", "NUL", "LPT9")
    out.encode("utf-8")  # no lone surrogates


def test_safe_relative_drops_climbing() -> None:
    assert delivery.safe_relative("a/../../b/./c") == ["a", "b", "c"]
    assert delivery.safe_relative("/etc/passwd") == ["etc", "passwd"]
    assert delivery.safe_relative("") == []


def test_inside(tmp_path: Path) -> None:
    (tmp_path / "base").mkdir()
    assert delivery.inside(tmp_path / "base", tmp_path / "base" / "x") == \
        (tmp_path / "base" / "x").resolve()
    with pytest.raises(delivery.DeliveryError):
        delivery.inside(tmp_path / "base", tmp_path / "base" / ".." / "x")


def test_atomic_write_replaces_and_leaves_no_temp(tmp_path: Path) -> None:
    target = tmp_path / "f.bin"
    delivery.atomic_write(target, b"one")
    delivery.atomic_write(target, b"two")
    assert target.read_bytes() == b"two"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]
    assert delivery.same_content(target, b"two") and not delivery.same_content(target, b"one")


def test_one_line_strips_controls() -> None:
    assert delivery.one_line("a\r\nBcc: x\t\x00y") == "a Bcc: x y"


def test_as_int() -> None:
    assert delivery.as_int({"n": "12"}, "n") == 12
    assert delivery.as_int({}, "n") is None
    with pytest.raises(delivery.DeliveryError) as info:
        delivery.as_int({"n": "twelve"}, "n")
    assert not info.value.transient and info.value.message.startswith("n:")
