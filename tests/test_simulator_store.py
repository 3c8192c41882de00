"""Unit tests of the simulator's pure state (faxflow.simulator.store), with a fake clock."""

from __future__ import annotations

import pathlib
import re
import threading
from datetime import datetime, timedelta
from urllib.parse import quote, unquote

import pytest

from faxflow.simulator import BadRequest, Conflict, NotFound, Simulator, file_name
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.simulator.store import DATE_RECEIVED_FORMAT, RETENTION_SECONDS, Faults

API = "http://sim.test:8080/faxin/rest/v1"
T0 = 1_700_000_000.0  # a whole second, so dateReceived round-trips exactly

PUBLISHED_FIELDS = [
    "id", "callId", "costCenter", "dateReceived", "totalDuration", "senderIsdn",
    "senderFaxId", "receiverIsdn", "receiverFaxId", "faxResolution", "faxBaudRate",
    "faxPageCount", "faxClassicStatus", "faxNumericStatus", "archivingStatus",
    "archiveExpiry", "documents",
]


class FakeClock:
    def __init__(self, now: float = T0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def sim() -> Simulator:
    return Simulator(
        users={"99999": "secret", "11111": "other"},
        topics={"abc123": "99999", "def456": "99999", "xyz789": "11111"},
        clock=FakeClock(),
        seed=1,
    )


def pull(sim: Simulator, fetch: int = 10, timeout: int = 60, ids: list[str] | None = None,
         topic: str = "abc123") -> list[str]:
    return [job["id"] for job in sim.pull(topic, ids or [], fetch, timeout, API)]


def state(sim: Simulator, topic: str = "abc123") -> dict[str, int]:
    found = sim.topic_state(topic)
    return {k: found[k] for k in ("available", "locked", "acknowledged", "expired")}


# -- add_fax ---------------------------------------------------------------------------------


def test_add_fax_fills_every_published_field(sim: Simulator) -> None:
    job = sim.add_fax("abc123")
    assert list(job) == PUBLISHED_FIELDS
    assert isinstance(job["id"], str) and job["id"]
    received = datetime.strptime(job["dateReceived"], DATE_RECEIVED_FORMAT)
    assert received.timestamp() == T0
    assert job["dateReceived"][-5:] in ("+0200",)  # offset without colon
    assert job["archiveExpiry"] == (received + timedelta(days=7)).strftime("%Y.%m.%d")
    assert job["faxPageCount"] == 1
    assert isinstance(job["totalDuration"], int) and isinstance(job["faxBaudRate"], int)
    assert job["senderIsdn"].startswith("00") and job["receiverIsdn"].startswith("+")
    (doc,) = job["documents"]
    assert doc["url"].endswith("/files/" + file_name(job["id"], "pdf"))


def test_add_fax_without_documents_stores_a_one_page_pdf(sim: Simulator) -> None:
    job = sim.add_fax("abc123")
    content, content_type = sim.get_file("99999", f"{job['id']}.pdf") or (b"", "")
    assert content.startswith(b"%PDF-1.4") and content.rstrip().endswith(b"%%EOF")
    assert content.count(b"/Type /Page ") == 1
    assert content_type == "application/pdf"


def test_minipdf_xref_offsets_point_at_objects() -> None:
    pdf = one_page_pdf("x (y) \\ z")
    xref_at = int(pdf.rsplit(b"startxref\n", 1)[1].split(b"\n")[0])
    assert pdf[xref_at:].startswith(b"xref\n0 6\n")
    entries = pdf[xref_at:].split(b"\n")[3:8]
    for number, entry in enumerate(entries, start=1):
        offset = int(entry[:10])
        assert pdf[offset:].startswith(f"{number} 0 obj".encode())


def test_given_fields_win_and_extra_fields_pass_through(sim: Simulator) -> None:
    job = sim.add_fax(
        "abc123", id="29", senderIsdn="+4930123456", dateReceived="2023-08-03T12:09:43+0200",
        customField={"nested": True}, topic="not the topic argument",
    )
    assert job["id"] == "29"
    assert job["senderIsdn"] == "+4930123456"
    assert job["dateReceived"] == "2023-08-03T12:09:43+0200"
    assert job["archiveExpiry"] == "2023.08.10"
    assert job["customField"] == {"nested": True}
    assert job["topic"] == "not the topic argument"


def test_page_count_follows_the_given_pdf(sim: Simulator) -> None:
    two_pages = b"%PDF-1.4\n<< /Type /Pages /Count 2 >> << /Type /Page >> << /Type/Page >>"
    job = sim.add_fax("abc123", documents=[{"extension": "pdf", "content": two_pages}])
    assert job["faxPageCount"] == 2


def test_documents_of_several_types(sim: Simulator) -> None:
    job = sim.add_fax("abc123", id="7", documents=[
        {"extension": "pdf", "content": b"%PDF-x"}, {"extension": "TIF", "content": b"II*\0"},
    ])
    assert [d["url"].rsplit("/", 1)[1] for d in job["documents"]] == ["7.pdf", "7.tif"]
    assert sim.get_file("99999", "7.tif") == (b"II*\0", "image/tiff")
    assert sim.get_file("99999", "7.pdf") == (b"%PDF-x", "application/pdf")
    assert sim.get_file("99999", "7.tiff") is None


@pytest.mark.parametrize("documents", [
    [{"extension": "doc", "content": b"x"}],
    [{"extension": "pdf", "content": "not bytes"}],
    [{"content": b"x"}],
    [{"extension": "pdf", "content": b"a"}, {"extension": "pdf", "content": b"b"}],
    ["not an object"],
])
def test_bad_documents_are_refused(sim: Simulator, documents: list[object]) -> None:
    with pytest.raises(BadRequest):
        sim.add_fax("abc123", documents=documents)  # type: ignore[arg-type]


def test_duplicate_id_in_topic_conflicts_but_not_across_topics(sim: Simulator) -> None:
    sim.add_fax("abc123", id="29")
    with pytest.raises(Conflict) as caught:
        sim.add_fax("abc123", id="29")
    assert caught.value.status == 409
    assert sim.add_fax("def456", id="29")["id"] == "29"


@pytest.mark.parametrize("bad_id", ["a,b", "", 29])
def test_bad_given_id_is_refused(sim: Simulator, bad_id: object) -> None:
    with pytest.raises(BadRequest) as caught:
        sim.add_fax("abc123", id=bad_id)
    assert caught.value.status == 400
    assert sim.topic_state("abc123")["available"] == 0


def test_bad_date_received_is_refused(sim: Simulator) -> None:
    with pytest.raises(BadRequest):
        sim.add_fax("abc123", dateReceived="03.08.2023")


def test_unknown_topic_is_not_found(sim: Simulator) -> None:
    with pytest.raises(NotFound):
        sim.add_fax("nope")
    with pytest.raises(NotFound):
        sim.topic_state("nope")


def test_generated_ids_mix_retarus_shape_and_url_significant_characters(sim: Simulator) -> None:
    ids = [sim.add_fax("abc123")["id"] for _ in range(10)]
    assert len(set(ids)) == 10
    plain = [i for i in ids if all(c.isalnum() or c in "@." for c in i)]
    odd = [i for i in ids if i not in plain]
    assert plain and odd
    for job_id in plain:
        head, _, rest = job_id.partition("@")
        assert len(head) == 8 and rest.count(".") == 2 and "," not in job_id
    for job_id in odd:
        assert all(c in job_id for c in "/+ %")


def test_file_name_keeps_one_segment_and_round_trips() -> None:
    job_id = "Q7/X+4 %2FZ@J78AO6W.glaqsmucre101.QA1"
    name = file_name(job_id, "pdf")
    assert "/" not in name and " " not in name and "+" not in name
    assert name == quote(job_id, safe="@") + ".pdf"
    assert unquote(name) == job_id + ".pdf"
    assert file_name("K34A3QX3@J78AO6W.glaqsmucre101.QA1", "tif") == (
        "K34A3QX3@J78AO6W.glaqsmucre101.QA1.tif"
    )


def test_add_fax_is_safe_from_many_threads(sim: Simulator) -> None:
    def add() -> None:
        for _ in range(50):
            sim.add_fax("abc123")

    threads = [threading.Thread(target=add) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert state(sim)["available"] == 400
    assert len(set(pull(sim, fetch=100, timeout=0))) == 100


# -- pull: fetch, locks, acks ----------------------------------------------------------------


def test_fetch_returns_min_of_fetch_available_and_100(sim: Simulator) -> None:
    for _ in range(150):
        sim.add_fax("abc123")
    assert len(pull(sim, fetch=3)) == 3
    assert len(pull(sim, fetch=1000)) == 100
    assert len(pull(sim, fetch=1000)) == 47
    assert pull(sim, fetch=10) == []


def test_order_is_order_of_receipt(sim: Simulator) -> None:
    ids = [sim.add_fax("abc123")["id"] for _ in range(5)]
    assert pull(sim, fetch=2) + pull(sim, fetch=10) == ids


def test_handed_out_jobs_are_locked_until_timeout(sim: Simulator) -> None:
    clock = FakeClock()
    sim = Simulator(users={"u": "p"}, topics={"t": "u"}, clock=clock)
    job_id = sim.add_fax("t")["id"]
    assert pull(sim, timeout=60, topic="t") == [job_id]
    assert state(sim, "t") == {"available": 0, "locked": 1, "acknowledged": 0, "expired": 0}
    clock.now += 59.5
    assert pull(sim, topic="t") == []
    clock.now += 0.5  # lock expired, not acknowledged: handed out again
    assert pull(sim, timeout=60, topic="t") == [job_id]


def test_advance_moves_the_clock_and_expires_locks(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    pull(sim, timeout=60)
    assert sim.advance(60) == T0 + 60
    assert pull(sim) == [job_id]
    for bad in (-1, float("nan"), float("inf")):
        with pytest.raises(BadRequest):
            sim.advance(bad)


def test_timeout_zero_means_no_lock(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    assert pull(sim, timeout=0) == [job_id]
    assert state(sim)["available"] == 1
    assert pull(sim, timeout=0) == [job_id]


def test_acknowledged_job_never_comes_back(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    pull(sim, timeout=1)
    assert pull(sim, fetch=0, ids=[job_id]) == []
    sim.advance(3600)
    assert pull(sim) == []
    assert state(sim)["acknowledged"] == 1


def test_acks_are_applied_before_fetching(sim: Simulator) -> None:
    first, second = sim.add_fax("abc123")["id"], sim.add_fax("abc123")["id"]
    # With no lock both are available; acknowledging first in the same call must hide it.
    assert pull(sim, timeout=0, ids=[first]) == [second]


def test_fetch_zero_only_acknowledges(sim: Simulator) -> None:
    first, second = sim.add_fax("abc123")["id"], sim.add_fax("abc123")["id"]
    assert pull(sim, fetch=0, ids=[first]) == []
    assert state(sim) == {"available": 1, "locked": 0, "acknowledged": 1, "expired": 0}
    assert pull(sim) == [second]


def test_acks_are_idempotent_and_unknown_or_expired_ids_are_ignored(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    old = sim.add_fax("abc123", dateReceived="2000-01-01T00:00:00+0000")["id"]
    foreign = sim.add_fax("def456")["id"]
    pull(sim, fetch=0, ids=[job_id, "unknown", job_id, old, foreign])
    pull(sim, fetch=0, ids=[job_id])
    assert state(sim) == {"available": 0, "locked": 0, "acknowledged": 1, "expired": 1}
    # acks: every id of a job of this topic, in order, repeats included
    assert sim.topic_state("abc123")["acks"] == [job_id, job_id, old, job_id]
    assert sim.topic_state("def456") == {
        "available": 1, "locked": 0, "acknowledged": 0, "expired": 0, "acks": [],
    }


def test_ack_is_honoured_after_lock_expiry_and_after_re_handing(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    pull(sim, timeout=10)  # poller A
    sim.advance(10)
    assert pull(sim, timeout=60) == [job_id]  # poller B got it meanwhile
    pull(sim, fetch=0, ids=[job_id])  # A's late ack still counts
    assert state(sim)["acknowledged"] == 1
    sim.advance(60)
    assert pull(sim) == []


# -- expiry ----------------------------------------------------------------------------------


def test_job_expires_seven_days_after_receipt(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    sim.advance(RETENTION_SECONDS - 1)
    assert sim.get_file("99999", f"{job_id}.pdf") is not None
    assert pull(sim, timeout=0) == [job_id]
    sim.advance(1)  # now == dateReceived + 7 days
    assert pull(sim) == []
    assert sim.get_file("99999", f"{job_id}.pdf") is None
    assert state(sim) == {"available": 0, "locked": 0, "acknowledged": 0, "expired": 1}


def test_expiry_follows_a_given_date_received(sim: Simulator) -> None:
    sim.add_fax("abc123", dateReceived="2000-01-01T00:00:00+0200")
    recent = datetime.fromtimestamp(T0 - RETENTION_SECONDS + 5).astimezone()
    fresh = sim.add_fax("abc123", dateReceived=recent.strftime(DATE_RECEIVED_FORMAT))["id"]
    assert pull(sim) == [fresh]
    assert state(sim)["expired"] == 1


def test_counts_partition_jobs_by_precedence(sim: Simulator) -> None:
    ids = [sim.add_fax("abc123")["id"] for _ in range(6)]
    pull(sim, fetch=2, timeout=1000)  # ids[0], ids[1] locked
    pull(sim, fetch=0, ids=[ids[0], ids[2]])  # acknowledged (ids[0] was also locked)
    assert state(sim) == {"available": 3, "locked": 1, "acknowledged": 2, "expired": 0}
    sim.advance(RETENTION_SECONDS)  # everything expired: acknowledged still wins
    assert state(sim) == {"available": 0, "locked": 0, "acknowledged": 2, "expired": 4}


def test_locked_job_past_expiry_counts_as_expired(sim: Simulator) -> None:
    sim.add_fax("abc123")
    pull(sim, timeout=10 * RETENTION_SECONDS)
    assert state(sim)["locked"] == 1
    sim.advance(RETENTION_SECONDS)
    assert state(sim) == {"available": 0, "locked": 0, "acknowledged": 0, "expired": 1}


# -- files and auth --------------------------------------------------------------------------


def test_files_are_only_for_the_owner(sim: Simulator) -> None:
    job_id = sim.add_fax("abc123")["id"]
    assert sim.get_file("99999", f"{job_id}.pdf") is not None
    assert sim.get_file("11111", f"{job_id}.pdf") is None
    assert sim.get_file("99999", "unknown.pdf") is None
    assert sim.get_file("99999", job_id) is None


def test_authenticate_and_owns(sim: Simulator) -> None:
    assert sim.authenticate("99999", "secret")
    assert not sim.authenticate("99999", "Secret")
    assert not sim.authenticate("nobody", "secret")
    assert sim.owns("99999", "abc123") and not sim.owns("11111", "abc123")
    assert not sim.owns("99999", "nope")


def test_topic_needs_a_known_owner() -> None:
    with pytest.raises(ValueError, match="unknown owner"):
        Simulator(users={"u": "p"}, topics={"t": "v"})


def test_default_clock_is_time_plus_offset() -> None:
    sim = Simulator()
    before = sim.now()
    sim.advance(1000)
    assert 1000 <= sim.now() - before < 1010


# -- faults ----------------------------------------------------------------------------------


def test_no_faults_by_default(sim: Simulator) -> None:
    plan = sim.plan_faults()
    assert (plan.status, plan.latency, plan.drop, plan.malformed) == (None, 0.0, False, False)


def test_fault_rate_one_always_answers_a_listed_status(sim: Simulator) -> None:
    sim.set_faults({"rate": 1.0, "statuses": [503, 520], "drop_rate": 1.0})
    statuses = {sim.plan_faults().status for _ in range(50)}
    assert statuses == {503, 520}
    # a status fault answers before processing, so it is never also a drop
    assert not any(sim.plan_faults().drop for _ in range(20))


def test_fault_rates_are_seedable_and_roughly_right() -> None:
    def draws(seed: int) -> list[int | None]:
        sim = Simulator(seed=seed)
        sim.set_faults({"rate": 0.2})
        return [sim.plan_faults().status for _ in range(1000)]

    first = draws(5)
    assert first == draws(5) != draws(6)
    hits = sum(status is not None for status in first)
    assert 130 < hits < 270
    assert {s for s in first if s is not None} == {429, 500, 503, 520}


def test_drop_malformed_and_latency_plans(sim: Simulator) -> None:
    sim.set_faults({"drop_rate": 1.0, "latency_ms": 50})
    plan = sim.plan_faults()
    assert plan.drop and not plan.malformed and plan.status is None and plan.latency == 0.05
    sim.set_faults({"malformed_rate": 1.0})
    assert sim.plan_faults().malformed
    sim.set_faults({})
    assert sim.plan_faults().malformed is False


@pytest.mark.parametrize("body", [
    {"rate": 1.5}, {"rate": -0.1}, {"rate": "0.2"}, {"rate": True}, {"statuses": []},
    {"statuses": [200]}, {"statuses": "500"}, {"latency_ms": -1}, {"drop_rate": 2},
    {"malformed_rate": None}, {"latency_ms": float("nan")}, {"rate": float("nan")},
])
def test_bad_fault_settings_are_refused(body: dict[str, object]) -> None:
    with pytest.raises(BadRequest):
        Faults.from_json(body)


def test_docs_table_names_only_existing_tests() -> None:
    here = pathlib.Path(__file__).parent
    docs = (here.parent / "docs" / "simulator.md").read_text()
    modules = {"S": "test_simulator_store.py", "H": "test_simulator_http.py"}
    named = re.findall(r"\b([SH])::(test_\w+)", docs)
    assert len(named) > 50
    for prefix, name in named:
        source = (here / modules[prefix]).read_text()
        assert f"def {name}(" in source, f"{prefix}::{name} in docs/simulator.md"
