"""RetarusClient against the real simulator over loopback HTTP (no mocks).

Retries use an injected `sleep` that records delays instead of waiting; where a test needs a
fault to end, that `sleep` clears the simulator's faults, so "retried to success" is exact.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import socket
import ssl
import threading
import traceback
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest
import trustme

from faxflow.retarus import (
    AuthError,
    BadRequestError,
    ForbiddenError,
    NotFoundError,
    ProtocolError,
    RetarusClient,
    RetarusError,
    RetryPolicy,
    TooLargeError,
    UnavailableError,
)
from faxflow.retarus.client import MAX_URL_LENGTH
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.types import DocumentRef

USER, PASSWORD = "99999", "Pa55-w0rd/üñ+secret"
OTHER_USER = "88888"
TOPIC, FOREIGN = "abc123", "theirs"
WEEK = 7 * 86400

HOSTILE_IDS = [
    "K34A3QX3@J78AO6W.glaqsmucre101.QA1",
    "with space",
    "plus+sign",
    "per%cent",
    "pct%2Fslash",
    "a%2Cb",
    "sl/ash",
    "ümlaut-日本",
    "semi;colon=eq&amp",
    "q?mark#hash",
    "..",
    "~tilde'quote\"",
    "back\\slash",
    "+",
    "%",
]


@pytest.fixture
def sim() -> Simulator:
    return Simulator(
        users={USER: PASSWORD, OTHER_USER: "other"},
        topics={TOPIC: USER, FOREIGN: OTHER_USER},
        seed=7,
    )


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, host="127.0.0.1", port=0) as running:
        yield running


@pytest.fixture
def sleeps() -> list[float]:
    return []


def make_client(
    server: SimulatorServer,
    sleep: Callable[[float], None],
    password: str = PASSWORD,
    attempts: int = 4,
) -> RetarusClient:
    return RetarusClient(
        USER,
        password,
        base_url=server.api_url,
        retry=RetryPolicy(attempts=attempts, base_delay=0.05, max_delay=30.0),
        sleep=sleep,
    )


@pytest.fixture
def client(server: SimulatorServer, sleeps: list[float]) -> Iterator[RetarusClient]:
    with make_client(server, sleeps.append) as made:
        yield made


def sim_post(server: SimulatorServer, path: str, body: dict[str, Any]) -> None:
    httpx.post(server.base_url + path, json=body).raise_for_status()


def state(server: SimulatorServer, topic: str = TOPIC) -> dict[str, Any]:
    answer = httpx.get(f"{server.base_url}/_sim/topics/{topic}")
    answer.raise_for_status()
    result: dict[str, Any] = answer.json()
    return result


def pdf(text: str) -> bytes:
    return b"%PDF-1.4\n% " + text.encode() + b"\n%%EOF\n"


def add(sim: Simulator, n: int, **fields: Any) -> list[str]:
    return [
        sim.add_fax(TOPIC, documents=[{"extension": "pdf", "content": pdf(f"fax {i}")}], **fields)[
            "id"
        ]
        for i in range(n)
    ]


def clear_faults_then(server: SimulatorServer, sleeps: list[float]) -> Callable[[float], None]:
    """A `sleep` that records the delay and ends fault injection, like a server recovering."""

    def sleep(delay: float) -> None:
        sleeps.append(delay)
        sim_post(server, "/_sim/faults", {})

    return sleep


# -- locking, acknowledging ----------------------------------------------------------------


def test_pull_locks_jobs_and_hands_them_out_again_after_the_timeout(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    ids = add(sim, 3)
    first = client.pull(TOPIC, fetch=10, timeout=60)
    assert sorted(j.id for j in first.jobs) == sorted(ids)
    assert first.meta.version == 1 and first.meta.result_size == 3
    assert client.pull(TOPIC, fetch=10, timeout=60).jobs == ()
    assert state(server)["locked"] == 3
    sim_post(server, "/_sim/clock", {"advance": 61})
    again = client.pull(TOPIC, fetch=10, timeout=60)
    assert sorted(j.id for j in again.jobs) == sorted(ids)


def test_ack_by_following_next(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    ids = add(sim, 5)
    first = client.pull(TOPIC, fetch=2, timeout=60)
    assert len(first.jobs) == 2
    second = client.follow(first.meta.next)
    assert len(second.jobs) == 2
    assert set(second.meta.parameters["ids"]) == {j.id for j in first.jobs}
    assert state(server)["acknowledged"] == 2
    third = client.follow(second.meta.next)
    fourth = client.follow(third.meta.next)
    assert fourth.jobs == ()
    assert state(server)["acknowledged"] == 5
    assert sorted(state(server)["acks"]) == sorted(ids)


def test_ack_by_following_exit_fetches_nothing(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    add(sim, 4)
    batch = client.pull(TOPIC, fetch=3, timeout=60)
    done = client.follow(batch.meta.exit)
    assert done.jobs == ()
    counts = state(server)
    assert (counts["acknowledged"], counts["available"]) == (3, 1)


def test_follow_never_contacts_the_host_in_the_url(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    (job_id,) = add(sim, 1)
    client.pull(TOPIC, fetch=1, timeout=60)
    hostile = f"http://127.0.0.2:1/faxin/rest/v1/topics/{TOPIC}?fetch=0&ids={job_id}"
    client.follow(hostile)
    assert state(server)["acknowledged"] == 1
    with pytest.raises(ProtocolError):
        client.follow(None)
    with pytest.raises(ProtocolError):
        client.follow("http://127.0.0.2:1/elsewhere?fetch=1")


def test_ack_explicit_ids_and_ack_piggybacked_on_pull(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    add(sim, 3)
    jobs = client.pull(TOPIC, fetch=10, timeout=60).jobs
    client.ack(TOPIC, [jobs[0].id])
    assert state(server)["acknowledged"] == 1
    client.pull(TOPIC, fetch=0, timeout=60, ack_ids=[jobs[1].id])
    counts = state(server)
    assert (counts["acknowledged"], counts["locked"]) == (2, 1)
    client.ack(TOPIC, [])  # no ids: no call at all
    assert state(server)["acks"] == [jobs[0].id, jobs[1].id]
    # the unacknowledged one comes back, the acknowledged ones never do
    sim_post(server, "/_sim/clock", {"advance": 3600})
    assert [j.id for j in client.pull(TOPIC, fetch=10, timeout=60).jobs] == [jobs[2].id]


def test_acks_are_idempotent(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    (job_id,) = add(sim, 1)
    client.pull(TOPIC, fetch=1, timeout=60)
    client.ack(TOPIC, [job_id])
    client.ack(TOPIC, [job_id])
    client.ack(TOPIC, ["no-such-job"])
    counts = state(server)
    assert counts["acks"] == [job_id, job_id]
    assert counts["acknowledged"] == 1
    sim_post(server, "/_sim/clock", {"advance": 3600})
    assert client.pull(TOPIC, fetch=10, timeout=60).jobs == ()


def test_long_ack_lists_are_split_into_urls_under_the_limit(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    ids = [f"K34A3QX3@J78AO6W.glaqsmucre{n:05d}.QA1 /+%" for n in range(300)]
    for job_id in ids:
        sim.add_fax(TOPIC, id=job_id)
    chunks = client._id_chunks(TOPIC, ids)
    assert len(chunks) > 1
    assert [i for chunk in chunks for i in chunk] == ids
    assert all(len(client._topic_url(TOPIC, 100, 60, c)) <= MAX_URL_LENGTH for c in chunks)
    client.pull(TOPIC, fetch=100, timeout=60)
    client.ack(TOPIC, ids)
    assert state(server)["acknowledged"] == 300
    assert sorted(state(server)["acks"]) == sorted(ids)


def test_two_concurrent_pollers_get_disjoint_jobs(
    sim: Simulator, server: SimulatorServer, sleeps: list[float]
) -> None:
    ids = add(sim, 120)
    seen: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def poll(slot: int) -> None:
        with make_client(server, sleeps.append) as own:
            start.wait()
            pending: list[str] = []
            while True:
                batch = own.pull(TOPIC, fetch=7, timeout=600, ack_ids=pending)
                if not batch.jobs:
                    return
                pending = [j.id for j in batch.jobs]
                seen[slot].extend(pending)

    threads = [threading.Thread(target=poll, args=(n,)) for n in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not set(seen[0]) & set(seen[1])
    assert sorted(seen[0] + seen[1]) == sorted(ids)
    assert seen[0] and seen[1]
    assert state(server)["acknowledged"] == 120


def test_expired_jobs_are_not_handed_out_and_their_files_are_gone(
    sim: Simulator, server: SimulatorServer, client: RetarusClient, tmp_path: Path
) -> None:
    add(sim, 1)
    (job,) = client.pull(TOPIC, fetch=1, timeout=0).jobs
    sim_post(server, "/_sim/clock", {"advance": WEEK})
    assert client.pull(TOPIC, fetch=10, timeout=60).jobs == ()
    assert state(server)["expired"] == 1
    with pytest.raises(NotFoundError, match="7 days"):
        client.download(job.documents[0], tmp_path / "gone.pdf")
    assert list(tmp_path.iterdir()) == []


# -- downloads -----------------------------------------------------------------------------


def test_download_streams_to_dest_with_hash_and_type(
    sim: Simulator, client: RetarusClient, tmp_path: Path
) -> None:
    content = pdf("x" * 200_000)
    sim.add_fax(TOPIC, documents=[{"extension": "pdf", "content": content}])
    (job,) = client.pull(TOPIC, fetch=1, timeout=60).jobs
    doc = client.download(job.documents[0], tmp_path / "safe-name.pdf", max_bytes=1_000_000)
    assert doc.path == tmp_path / "safe-name.pdf"
    assert doc.path.read_bytes() == content
    assert doc.size == len(content)
    assert doc.sha256 == hashlib.sha256(content).hexdigest()
    assert doc.content_type == "application/pdf"
    assert doc.ref == job.documents[0]
    assert [p.name for p in tmp_path.iterdir()] == ["safe-name.pdf"]


def test_download_over_the_size_cap_is_aborted_and_deleted(
    sim: Simulator, client: RetarusClient, tmp_path: Path
) -> None:
    sim.add_fax(TOPIC, documents=[{"extension": "pdf", "content": pdf("y" * 50_000)}])
    (job,) = client.pull(TOPIC, fetch=1, timeout=60).jobs
    with pytest.raises(TooLargeError, match="cap of 10000"):
        client.download(job.documents[0], tmp_path / "big.pdf", max_bytes=10_000)
    assert list(tmp_path.iterdir()) == []


def test_download_goes_to_the_api_base_not_to_the_document_url_host(
    sim: Simulator, client: RetarusClient, tmp_path: Path
) -> None:
    sim.add_fax(TOPIC, id="29", documents=[{"extension": "pdf", "content": pdf("29")}])
    ref = DocumentRef(url="http://127.0.0.2:1/x/29.pdf", name="29.pdf", extension="pdf")
    doc = client.download(ref, tmp_path / "a.pdf")
    assert doc.path.read_bytes() == pdf("29")
    # the name from the URL alone is enough, and a name never escapes its path segment
    bare = DocumentRef(url="https://evil.example/../../29.pdf", name="", extension="")
    assert client.download(bare, tmp_path / "b.pdf").size == len(pdf("29"))
    with pytest.raises(ProtocolError):
        client.download(
            DocumentRef(url="https://evil.example/", name="", extension=""), tmp_path / "c"
        )


def test_parallel_downloads_share_one_client(
    sim: Simulator, client: RetarusClient, tmp_path: Path
) -> None:
    add(sim, 40)
    jobs = client.pull(TOPIC, fetch=100, timeout=60).jobs
    with ThreadPoolExecutor(max_workers=16) as pool:
        docs = list(
            pool.map(
                lambda n: client.download(jobs[n].documents[0], tmp_path / f"{n}.pdf"),
                range(len(jobs)),
            )
        )
    assert len({d.sha256 for d in docs}) == 40
    assert all(d.path.read_bytes().startswith(b"%PDF") for d in docs)


# -- hostile ids -----------------------------------------------------------------------------


def test_hostile_ids_round_trip(
    sim: Simulator, server: SimulatorServer, client: RetarusClient, tmp_path: Path
) -> None:
    for n, job_id in enumerate(HOSTILE_IDS):
        sim.add_fax(TOPIC, id=job_id, documents=[{"extension": "pdf", "content": pdf(str(n))}])
    jobs = client.pull(TOPIC, fetch=100, timeout=60).jobs
    assert sorted(j.id for j in jobs) == sorted(HOSTILE_IDS)
    by_id = {j.id: j for j in jobs}
    for n, job_id in enumerate(HOSTILE_IDS):
        doc = client.download(by_id[job_id].documents[0], tmp_path / f"{n}.pdf")
        assert doc.path.read_bytes() == pdf(str(n))
    # half by an explicit ack, half piggy-backed on a pull; the server echoes them exactly
    half = len(HOSTILE_IDS) // 2
    client.ack(TOPIC, HOSTILE_IDS[:half])
    echoed = client.pull(TOPIC, fetch=10, timeout=60, ack_ids=HOSTILE_IDS[half:])
    assert echoed.meta.parameters["ids"] == HOSTILE_IDS[half:]
    counts = state(server)
    assert counts["acks"] == HOSTILE_IDS
    assert counts["acknowledged"] == len(HOSTILE_IDS)


def test_generated_ids_survive_next_urls(
    sim: Simulator, server: SimulatorServer, client: RetarusClient
) -> None:
    sim.add_fax(TOPIC)  # the simulator's own ids hold @ / + space and a literal %2F
    sim.add_fax(TOPIC)
    batch = client.pull(TOPIC, fetch=10, timeout=60)
    assert any("%2F" in j.id for j in batch.jobs)
    client.follow(batch.meta.exit)
    assert state(server)["acknowledged"] == 2


# -- errors ----------------------------------------------------------------------------------


def test_wrong_password_is_an_auth_error(server: SimulatorServer, sleeps: list[float]) -> None:
    with (
        make_client(server, sleeps.append, password="wrong") as bad,
        pytest.raises(AuthError, match="wrong username or password") as caught,
    ):
        bad.pull(TOPIC)
    assert caught.value.status == 401
    assert sleeps == []  # not retried


@pytest.mark.parametrize("topic", ["nope", FOREIGN])
def test_unknown_and_foreign_topics_are_forbidden(client: RetarusClient, topic: str) -> None:
    with pytest.raises(ForbiddenError, match=f"topic '{topic}' is unknown or not owned") as caught:
        client.pull(topic)
    assert caught.value.status == 403


def test_bad_request_and_unknown_file(
    server: SimulatorServer, client: RetarusClient, sleeps: list[float], tmp_path: Path
) -> None:
    ref = DocumentRef(url="x/never.pdf", name="never.pdf", extension="pdf")
    with pytest.raises(NotFoundError, match=r"'never\.pdf' not found"):
        client.download(ref, tmp_path / "n.pdf")
    sim_post(server, "/_sim/faults", {"rate": 1.0, "statuses": [400]})
    with pytest.raises(BadRequestError, match="HTTP 400"):
        client.pull(TOPIC)
    assert sleeps == []


def test_bad_arguments_are_refused_before_sending(client: RetarusClient) -> None:
    with pytest.raises(RetarusError, match="fetch"):
        client.pull(TOPIC, fetch=-1)
    with pytest.raises(RetarusError, match="comma"):
        client.ack(TOPIC, ["a,b"])


@pytest.mark.parametrize("status", [429, 500, 503, 520])
def test_server_trouble_is_retried_to_success(
    sim: Simulator,
    server: SimulatorServer,
    sleeps: list[float],
    status: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="faxflow.retarus")
    add(sim, 2)
    sim_post(server, "/_sim/faults", {"rate": 1.0, "statuses": [status]})
    with make_client(server, clear_faults_then(server, sleeps)) as retrying:
        batch = retrying.pull(TOPIC, fetch=10, timeout=60)
    assert len(batch.jobs) == 2
    assert len(sleeps) == 1
    if status == 429:
        assert sleeps == [1.0]  # the simulator's Retry-After
    assert f"HTTP {status} (attempt 1 of 4), retrying in" in caplog.text


def test_gives_up_after_the_configured_attempts(
    sim: Simulator, server: SimulatorServer, client: RetarusClient, sleeps: list[float]
) -> None:
    add(sim, 1)
    sim_post(server, "/_sim/faults", {"rate": 1.0, "statuses": [503]})
    with pytest.raises(UnavailableError, match=r"gave up after 4 attempt.*HTTP 503") as caught:
        client.pull(TOPIC)
    assert caught.value.status == 503 and caught.value.transient
    assert len(sleeps) == 3
    assert state(server)["available"] == 1  # a status fault has no effect


def test_dropped_pull_is_retried_and_its_jobs_come_back_after_the_lock(
    sim: Simulator, server: SimulatorServer, sleeps: list[float]
) -> None:
    ids = add(sim, 3)
    sim_post(server, "/_sim/faults", {"drop_rate": 1.0})
    with make_client(server, clear_faults_then(server, sleeps)) as retrying:
        # the lost answer locked the jobs; the retry sees none, as the contract says
        assert retrying.pull(TOPIC, fetch=10, timeout=60).jobs == ()
        assert len(sleeps) == 1
        sim_post(server, "/_sim/clock", {"advance": 61})
        assert sorted(j.id for j in retrying.pull(TOPIC, fetch=10, timeout=60).jobs) == sorted(ids)


def test_malformed_answers_are_retried_then_a_protocol_error(
    sim: Simulator, server: SimulatorServer, client: RetarusClient, sleeps: list[float]
) -> None:
    ids = add(sim, 2)
    client.pull(TOPIC, fetch=10, timeout=60)
    sim_post(server, "/_sim/faults", {"malformed_rate": 1.0})
    with pytest.raises(ProtocolError, match="not valid JSON"):
        client.pull(TOPIC, fetch=10, timeout=60, ack_ids=ids)
    assert len(sleeps) == 3
    # every attempt's ack part was applied, harmlessly
    counts = state(server)
    assert counts["acknowledged"] == 2 and counts["acks"] == ids * 4


def test_malformed_and_dropped_acks_and_downloads_retried_to_success(
    sim: Simulator, server: SimulatorServer, sleeps: list[float], tmp_path: Path
) -> None:
    ids = add(sim, 2)
    with make_client(server, clear_faults_then(server, sleeps)) as retrying:
        jobs = retrying.pull(TOPIC, fetch=10, timeout=60).jobs
        sim_post(server, "/_sim/faults", {"malformed_rate": 1.0})
        retrying.ack(TOPIC, [ids[0]])
        sim_post(server, "/_sim/faults", {"drop_rate": 1.0})
        doc = retrying.download(jobs[1].documents[0], tmp_path / "d.pdf")
    assert doc.path.read_bytes().startswith(b"%PDF")
    assert len(sleeps) == 2
    assert state(server)["acks"] == [ids[0], ids[0]]
    assert [p.name for p in tmp_path.iterdir()] == ["d.pdf"]


def test_connection_refused_gives_up_with_a_clear_error(sleeps: list[float]) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with (
        RetarusClient(
            USER,
            PASSWORD,
            base_url=f"http://127.0.0.1:{port}/faxin/rest/v1",
            retry=RetryPolicy(attempts=2),
            sleep=sleeps.append,
        ) as dead,
        pytest.raises(UnavailableError, match=r"gave up after 2 attempt.*ConnectError"),
    ):
        dead.pull(TOPIC)
    assert len(sleeps) == 1


# -- secrets ---------------------------------------------------------------------------------


def test_the_password_never_shows(
    sim: Simulator,
    server: SimulatorServer,
    caplog: pytest.LogCaptureFixture,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx and httpcore included
    wrong = "Wr0ng-Secret-Passw0rd"
    secrets = [
        wrong,
        PASSWORD,
        base64.b64encode(f"{USER}:{wrong}".encode()).decode(),
        base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(),
    ]
    texts: list[str] = []

    def record(exc: BaseException) -> None:
        texts.extend([str(exc), repr(exc), "".join(traceback.format_exception(exc))])

    add(sim, 1)
    with make_client(server, lambda _: None, password=wrong) as bad:
        texts.append(repr(bad))
        for call in (lambda: bad.pull(TOPIC), lambda: bad.ack(TOPIC, ["1"])):
            with pytest.raises(AuthError) as denied:
                call()
            record(denied.value)
    with make_client(server, lambda _: None) as good:
        texts.append(repr(good))
        sim_post(server, "/_sim/faults", {"rate": 1.0, "statuses": [503, 400]})
        for _ in range(3):
            with pytest.raises(RetarusError) as caught:
                good.pull(TOPIC)
            record(caught.value)
        sim_post(server, "/_sim/faults", {"drop_rate": 1.0})
        with pytest.raises(RetarusError) as caught:
            good.pull(TOPIC)
        record(caught.value)
    with pytest.raises(RetarusError) as caught:
        RetarusClient(USER, PASSWORD, base_url=f"http://{USER}:{PASSWORD}@127.0.0.1/x")
    record(caught.value)
    texts.append(caplog.text)
    texts.extend(capsys.readouterr())
    assert "retrying in" in caplog.text  # the logs did get written
    for text in texts:
        for secret in secrets:
            assert secret not in text


# -- configuration ---------------------------------------------------------------------------


def test_base_url_choices() -> None:
    with RetarusClient(USER, PASSWORD, region="de2") as de2:
        assert de2.base_url == "https://api.de2.retarus.com/faxin/rest/v1"
    with pytest.raises(RetarusError, match="unknown Retarus region"):
        RetarusClient(USER, PASSWORD, region="eu9")
    with pytest.raises(RetarusError, match="exactly one"):
        RetarusClient(USER, PASSWORD)
    with pytest.raises(RetarusError, match="clear text"):
        RetarusClient(USER, PASSWORD, base_url="http://fax.example.com/faxin/rest/v1")
    with RetarusClient(
        USER, PASSWORD, base_url="http://fax.example.com/faxin/rest/v1/", allow_http=True
    ) as plain:
        assert plain.base_url == "http://fax.example.com/faxin/rest/v1"


def test_server_text_in_messages_has_our_secrets_blotted_out(client: RetarusClient) -> None:
    token = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    snippet = client._body_snippet(f"echo: {PASSWORD} Basic {token}\x1b[2J".encode())
    assert PASSWORD not in snippet and token not in snippet and "\x1b" not in snippet
    assert snippet.startswith(": echo: ***")


def test_tls_is_verified_against_the_given_ca_and_never_switched_off(
    sim: Simulator, tmp_path: Path, sleeps: list[float]
) -> None:
    ca = trustme.CA()
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    add(sim, 1)
    with SimulatorServer(sim, ssl_context=server_context) as tls:
        assert tls.api_url.startswith("https://")
        with RetarusClient(USER, PASSWORD, base_url=tls.api_url, verify=bundle) as trusted:
            assert len(trusted.pull(TOPIC).jobs) == 1
        with (
            RetarusClient(USER, PASSWORD, base_url=tls.api_url, sleep=sleeps.append) as default,
            pytest.raises(RetarusError, match="certificate not trusted"),
        ):
            default.pull(TOPIC)
    assert sleeps == []  # a trust problem is not retried
    with pytest.raises(RetarusError, match="cannot be switched off"):
        RetarusClient(USER, PASSWORD, region="de1", verify=False)  # type: ignore[arg-type]
