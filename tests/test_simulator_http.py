"""The simulator over real HTTP on loopback: a started SimulatorServer on port 0, httpx."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import re
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote, urlsplit

import httpx
import pytest

from faxflow.simulator import Simulator, SimulatorServer, file_name
from faxflow.simulator.minipdf import one_page_pdf
from faxflow.simulator.server import Request, _is_loopback

AUTH = ("99999", "secret")
# Built once: httpx loads the CA bundle for every client otherwise (~60 ms each).
TLS = ssl.create_default_context()
T0 = 1_700_000_000.0
ODD_ID = "Q7/X+4 %2FZ@J78AO6W.glaqsmucre101.QA1"  # every URL-significant character


@pytest.fixture
def sim() -> Simulator:
    return Simulator(
        users={"99999": "secret", "11111": "other", "88888": "???"},
        topics={"abc123": "99999", "def456": "99999", "xyz789": "11111", "ghi000": "88888"},
        clock=lambda: T0,  # frozen: only /_sim/clock moves time, so no test races it
        seed=3,
    )


@pytest.fixture
def server(sim: Simulator) -> Iterator[SimulatorServer]:
    with SimulatorServer(sim, port=0) as running:
        yield running


@pytest.fixture
def api(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(verify=TLS, base_url=server.api_url, auth=AUTH, timeout=5) as client:
        yield client


@pytest.fixture
def simctl(server: SimulatorServer) -> Iterator[httpx.Client]:
    with httpx.Client(verify=TLS, base_url=server.base_url + "/_sim", timeout=5) as client:
        yield client


def poll(api: httpx.Client, topic: str = "abc123", **params: Any) -> dict[str, Any]:
    response = api.post(f"/topics/{topic}", params=params)
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def ids_of(body: dict[str, Any]) -> list[str]:
    return [job["id"] for job in body["results"]]


def topic_state(simctl: httpx.Client, topic: str = "abc123") -> dict[str, Any]:
    response = simctl.get(f"/topics/{topic}")
    assert response.status_code == 200
    found: dict[str, Any] = response.json()
    return found


def add(simctl: httpx.Client, topic: str = "abc123", **body: Any) -> httpx.Response:
    return simctl.post(f"/topics/{topic}/faxes", json=body)


# -- POST /topics/{topic}: the response ------------------------------------------------------


def test_poll_response_meta_and_job(server: SimulatorServer, sim: Simulator,
                                    api: httpx.Client) -> None:
    first, second = sim.add_fax("abc123")["id"], sim.add_fax("abc123", id=ODD_ID)["id"]
    response = api.post("/topics/abc123", params={"fetch": 5, "timeout": 30})
    assert response.headers["content-type"] == "application/json; charset=utf-8"
    body = response.json()
    meta = body["meta"]
    assert meta["version"] == 1 and meta["topic"] == "abc123" and meta["resultSize"] == 2
    acks = quote(first, safe="") + "%2C" + quote(second, safe="")
    topic_url = server.api_url + "/topics/abc123"
    assert meta["next"] == f"{topic_url}?fetch=5&timeout=30&ids={acks}"
    assert meta["exit"] == f"{topic_url}?fetch=0&timeout=30&ids={acks}"
    assert meta["parameters"] == {"fetch": 5, "timeout": 30, "ids": []}
    assert ids_of(body) == [first, second]
    job = body["results"][1]
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d[+-]\d{4}", job["dateReceived"])
    assert re.fullmatch(r"\d{4}\.\d\d\.\d\d", job["archiveExpiry"])
    assert job["documents"] == [{"url": f"{server.api_url}/files/{file_name(ODD_ID, 'pdf')}"}]


def test_meta_and_document_urls_use_the_host_the_client_used(sim: Simulator,
                                                            api: httpx.Client) -> None:
    sim.add_fax("abc123", id="29")
    body = api.post("/topics/abc123", headers={"Host": "fax.example:4443"}).json()
    assert body["meta"]["next"].startswith("http://fax.example:4443/faxin/rest/v1/topics/abc123?")
    assert body["meta"]["exit"].startswith("http://fax.example:4443/faxin/rest/v1/topics/abc123?")
    assert body["results"][0]["documents"][0]["url"] == (
        "http://fax.example:4443/faxin/rest/v1/files/29.pdf"
    )


def test_https_scheme_is_echoed(sim: Simulator) -> None:
    trustme = pytest.importorskip("trustme")
    authority = trustme.CA()
    context = authority.server_context() if hasattr(authority, "server_context") else None
    if context is None:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        authority.issue_cert("127.0.0.1").configure_cert(context)
    sim.add_fax("abc123", id="29")
    with SimulatorServer(sim, ssl_context=context) as tls_server:
        assert tls_server.api_url.startswith("https://127.0.0.1:")
        verify = authority.client_context() if hasattr(authority, "client_context") else False
        with httpx.Client(auth=AUTH, verify=verify) as client:
            body = client.post(tls_server.api_url + "/topics/abc123").json()
    assert body["meta"]["next"].startswith(tls_server.api_url + "/topics/abc123?")
    assert body["results"][0]["documents"][0]["url"] == tls_server.api_url + "/files/29.pdf"


def test_no_results_means_no_ids_in_next_and_exit(api: httpx.Client) -> None:
    body = poll(api, ids="unknown-id")
    assert body["results"] == [] and body["meta"]["resultSize"] == 0
    for key in ("next", "exit"):
        assert "ids=" not in body["meta"][key]
    assert body["meta"]["parameters"] == {"fetch": 10, "timeout": 60, "ids": ["unknown-id"]}


def test_following_next_acknowledges_and_fetches_the_next_batch(
        sim: Simulator, api: httpx.Client, simctl: httpx.Client) -> None:
    ids = [sim.add_fax("abc123")["id"] for _ in range(5)]
    body = poll(api, fetch=2)
    second = api.post(body["meta"]["next"]).json()
    assert ids_of(second) == ids[2:4]
    assert second["meta"]["parameters"]["ids"] == ids[:2]
    assert topic_state(simctl)["acknowledged"] == 2
    last = api.post(second["meta"]["exit"]).json()
    assert last["results"] == []
    assert topic_state(simctl) == {"available": 1, "locked": 0, "acknowledged": 4,
                                   "expired": 0, "acks": ids[:4]}


def test_fetch_defaults_to_10_and_is_capped_at_100(sim: Simulator, api: httpx.Client) -> None:
    for _ in range(115):
        sim.add_fax("abc123")
    assert len(ids_of(poll(api))) == 10
    assert len(ids_of(poll(api, fetch=500))) == 100
    assert len(ids_of(poll(api, fetch=500))) == 5


def test_timeout_defaults_to_60_seconds(sim: Simulator, api: httpx.Client,
                                        simctl: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    assert ids_of(poll(api)) == [job_id]
    simctl.post("/clock", json={"advance": 59})
    assert ids_of(poll(api)) == []
    simctl.post("/clock", json={"advance": 1})
    assert ids_of(poll(api)) == [job_id]


def test_timeout_zero_means_no_lock(sim: Simulator, api: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    assert ids_of(poll(api, timeout=0)) == [job_id]
    assert ids_of(poll(api, timeout=0)) == [job_id]


def test_lock_expiry_via_clock_advance(sim: Simulator, api: httpx.Client,
                                       simctl: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    assert ids_of(poll(api, timeout=300)) == [job_id]
    assert topic_state(simctl)["locked"] == 1
    assert simctl.post("/clock", json={"advance": 299.5}).status_code == 200
    assert ids_of(poll(api)) == []
    simctl.post("/clock", json={"advance": 0.5})
    assert ids_of(poll(api)) == [job_id]


def test_ack_and_fetch_in_one_call_acks_first(sim: Simulator, api: httpx.Client) -> None:
    first, second = sim.add_fax("abc123")["id"], sim.add_fax("abc123")["id"]
    assert ids_of(poll(api, timeout=0, ids=first)) == [second]
    assert ids_of(poll(api, timeout=0)) == [second]


def test_ids_encoded_and_with_literal_commas(sim: Simulator, api: httpx.Client,
                                            simctl: httpx.Client) -> None:
    a, b, c, d = (sim.add_fax("abc123", id=i)["id"] for i in ("a", "b", "c", "d"))
    assert api.post("/topics/abc123?fetch=0&ids=a%2Cb").status_code == 200  # encoded
    assert api.post("/topics/abc123?fetch=0&ids=c,d").status_code == 200  # the SDK's way
    assert topic_state(simctl)["acks"] == [a, b, c, d]
    assert topic_state(simctl)["acknowledged"] == 4


def test_ids_with_url_significant_characters_are_acknowledged(
        sim: Simulator, api: httpx.Client, simctl: httpx.Client) -> None:
    odd = sim.add_fax("abc123", id=ODD_ID)["id"]
    plus = sim.add_fax("abc123", id="a+b c")["id"]
    # httpx form-encodes: space -> '+', '+' -> %2B, ',' -> %2C
    body = poll(api, fetch=0, ids=f"{odd},{plus}")
    assert body["meta"]["parameters"]["ids"] == [odd, plus]
    assert topic_state(simctl)["acknowledged"] == 2


def test_acks_are_idempotent_and_unknown_ids_ignored(sim: Simulator, api: httpx.Client,
                                                    simctl: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    for _ in range(2):
        poll(api, fetch=0, ids=f"{job_id},nope")
    assert topic_state(simctl) == {"available": 0, "locked": 0, "acknowledged": 1,
                                   "expired": 0, "acks": [job_id, job_id]}


def test_ack_by_id_is_honoured_after_another_poller_got_the_job(
        sim: Simulator, server: SimulatorServer, simctl: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    with httpx.Client(verify=TLS, base_url=server.api_url, auth=AUTH) as a, \
            httpx.Client(verify=TLS, base_url=server.api_url, auth=AUTH) as b:
        assert ids_of(poll(a, timeout=5)) == [job_id]
        simctl.post("/clock", json={"advance": 5})
        assert ids_of(poll(b, timeout=60)) == [job_id]
        poll(a, fetch=0, ids=job_id)
    assert topic_state(simctl)["acknowledged"] == 1


def test_two_concurrent_pollers_get_disjoint_jobs(sim: Simulator, server: SimulatorServer,
                                                  simctl: httpx.Client) -> None:
    all_ids = {sim.add_fax("abc123")["id"] for _ in range(60)}
    got: list[list[str]] = [[], []]
    start = threading.Barrier(2)

    def poller(index: int) -> None:
        with httpx.Client(verify=TLS, base_url=server.api_url, auth=AUTH) as client:
            start.wait()
            while batch := ids_of(poll(client, fetch=3)):
                got[index].extend(batch)

    threads = [threading.Thread(target=poller, args=(i,)) for i in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(got[0]) & set(got[1])
    assert sorted(got[0] + got[1]) == sorted(all_ids)
    assert got[0] and got[1]  # both really polled
    assert topic_state(simctl)["locked"] == 60


def test_expired_jobs_are_not_handed_out(sim: Simulator, api: httpx.Client,
                                         simctl: httpx.Client) -> None:
    sim.add_fax("abc123")
    simctl.post("/clock", json={"advance": 7 * 86400})
    assert ids_of(poll(api)) == []
    assert topic_state(simctl)["expired"] == 1


def test_sdk_style_call_with_json_body_and_unknown_parameter(sim: Simulator,
                                                            api: httpx.Client) -> None:
    sim.add_fax("abc123", id="a")
    sim.add_fax("abc123", id="b")
    response = api.post("/topics/abc123?fetch=1&ids=&toString=", json={})
    assert response.status_code == 200
    assert ids_of(response.json()) == ["a"]
    response = api.post("/topics/abc123?fetch=1&ids=a,b&toString=&timeout=0",
                        content=b"not json at all")
    assert response.status_code == 200 and ids_of(response.json()) == []


# -- errors ----------------------------------------------------------------------------------


@pytest.mark.parametrize("query", [
    "fetch=-1", "fetch=", "fetch=abc", "fetch=1.5", "fetch=%201", "fetch=+1",
    "timeout=-5", "timeout=", "timeout=x", "timeout=1e3", "fetch=" + "9" * 5000,
])
def test_bad_parameters_are_400_and_have_no_effect(sim: Simulator, api: httpx.Client,
                                                   simctl: httpx.Client, query: str) -> None:
    job_id = sim.add_fax("abc123")["id"]
    response = api.post(f"/topics/abc123?ids={quote(job_id, safe='')}&{query}")
    assert response.status_code == 400
    assert topic_state(simctl)["acks"] == []


@pytest.mark.parametrize("auth", [None, ("99999", "wrong"), ("nobody", "secret"), ("99999", "")])
def test_missing_or_wrong_credentials_are_401(server: SimulatorServer, sim: Simulator,
                                             auth: tuple[str, str] | None) -> None:
    job_id = sim.add_fax("abc123", id="29")["id"]
    with httpx.Client(verify=TLS, base_url=server.api_url, auth=auth) as client:
        for response in (client.post("/topics/abc123"), client.get(f"/files/{job_id}.pdf")):
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Basic")


@pytest.mark.parametrize("header", [
    "Basic " + base64.urlsafe_b64encode(b"88888:???").decode(),  # the SDK bug: 401
    "Basic !!!", "Bearer " + base64.b64encode(b"99999:secret").decode(), "Basic",
    "Basic " + base64.b64encode(b"99999secret").decode(),
])
def test_only_standard_basic_auth_is_accepted(server: SimulatorServer, header: str) -> None:
    with httpx.Client(verify=TLS, base_url=server.api_url) as bare:
        standard = "Basic " + base64.b64encode(b"88888:???").decode()
        assert "/" in standard  # so the URL-safe alphabet really differs
        assert bare.post("/topics/ghi000", headers={"Authorization": standard}).status_code == 200
        response = bare.post("/topics/ghi000", headers={"Authorization": header})
        assert response.status_code == 401


def test_unknown_and_foreign_topics_are_403(api: httpx.Client) -> None:
    assert api.post("/topics/nope").status_code == 403
    assert api.post("/topics/xyz789").status_code == 403  # owned by 11111
    assert api.post("/topics/xyz789", auth=("11111", "other")).status_code == 200


def test_errors_are_checked_credentials_then_topic_then_parameters(api: httpx.Client) -> None:
    assert api.post("/topics/nope?fetch=-1", auth=("99999", "bad")).status_code == 401
    assert api.post("/topics/xyz789?fetch=-1").status_code == 403
    assert api.post("/topics/abc123?fetch=-1").status_code == 400


def test_wrong_method_is_405_and_unknown_path_404(api: httpx.Client,
                                                  simctl: httpx.Client) -> None:
    response = api.get("/topics/abc123")
    assert response.status_code == 405 and response.headers["allow"] == "POST"
    assert api.post("/files/x.pdf").status_code == 405
    assert api.post("/nothing/here").status_code == 404
    assert api.post("/topics/abc123/extra").status_code == 404
    assert simctl.get("/nothing").status_code == 404
    assert simctl.get("/clock").status_code == 405


# -- GET /files/{name} -----------------------------------------------------------------------


def test_file_download_serves_the_exact_bytes(sim: Simulator, api: httpx.Client) -> None:
    pdf, tiff = one_page_pdf("hello"), b"II*\x00" + bytes(range(256)) * 4
    job = sim.add_fax("abc123", documents=[{"extension": "pdf", "content": pdf},
                                           {"extension": "tiff", "content": tiff}])
    urls = [doc["url"] for doc in poll(api)["results"][0]["documents"]]
    assert urls[0].endswith(f"/{file_name(job['id'], 'pdf')}")
    first, second = api.get(urls[0]), api.get(urls[1])
    assert first.status_code == 200 and first.content == pdf
    assert first.headers["content-type"] == "application/pdf"
    assert second.content == tiff and second.headers["content-type"] == "image/tiff"


def test_file_name_with_url_significant_characters(sim: Simulator, api: httpx.Client) -> None:
    job = sim.add_fax("abc123", id=ODD_ID)
    url = job["documents"][0]["url"]
    segment = url.rsplit("/", 1)[1]
    assert segment == "Q7%2FX%2B4%20%252FZ@J78AO6W.glaqsmucre101.QA1.pdf"
    # As the SDK does: path built from the last segment of the url, kept as served.
    assert api.get(f"/files/{segment}").status_code == 200
    # Decoding it once more, or not encoding the id at all, finds nothing.
    assert api.get("/files/" + quote(ODD_ID.replace("%2F", "/"), safe="@") + ".pdf"
                   ).status_code == 404
    assert api.get("/files/" + ODD_ID.replace(" ", "%20") + ".pdf").status_code == 404


def test_unknown_expired_and_foreign_files_are_404(sim: Simulator, server: SimulatorServer,
                                                   api: httpx.Client,
                                                   simctl: httpx.Client) -> None:
    sim.add_fax("abc123", id="29")
    assert api.get("/files/29.pdf").status_code == 200
    assert api.get("/files/30.pdf").status_code == 404
    assert api.get("/files/29.tif").status_code == 404
    assert api.get("/files/29.pdf", auth=("11111", "other")).status_code == 404
    simctl.post("/clock", json={"advance": 7 * 86400})
    assert api.get("/files/29.pdf").status_code == 404


def test_files_outlive_the_ack_until_seven_days_after_receipt(
        sim: Simulator, api: httpx.Client, simctl: httpx.Client) -> None:
    sim.add_fax("abc123", id="29")
    poll(api, fetch=0, ids="29")
    assert topic_state(simctl)["acknowledged"] == 1
    assert api.get("/files/29.pdf").status_code == 200  # acknowledged, still there
    simctl.post("/clock", json={"advance": 7 * 86400 - 1})
    assert api.get("/files/29.pdf").status_code == 200
    simctl.post("/clock", json={"advance": 1})
    assert api.get("/files/29.pdf").status_code == 404


# -- HTTP plumbing ---------------------------------------------------------------------------


def test_keep_alive_and_pipelining_on_one_connection(server: SimulatorServer,
                                                    sim: Simulator) -> None:
    sim.add_fax("abc123", id="29")
    auth = base64.b64encode(b"99999:secret").decode()
    one = (f"GET /faxin/rest/v1/files/29.pdf HTTP/1.1\r\nHost: x\r\n"
           f"Authorization: Basic {auth}\r\n\r\n").encode()
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(one * 3)
        received = b""
        while received.count(b"%%EOF") < 3:
            chunk = sock.recv(65536)
            assert chunk, "connection closed early"
            received += chunk
    assert received.count(b"HTTP/1.1 200 OK") == 3


def test_malformed_http_gets_400(server: SimulatorServer) -> None:
    with socket.create_connection(("127.0.0.1", server.port), timeout=5) as sock:
        sock.sendall(b"THIS IS NOT HTTP\r\n\r\n")
        assert sock.recv(1024).startswith(b"HTTP/1.1 400")


def test_add_fax_from_another_thread_while_serving(server: SimulatorServer, sim: Simulator,
                                                  api: httpx.Client) -> None:
    added: list[str] = []
    thread = threading.Thread(target=lambda: added.append(sim.add_fax("abc123")["id"]))
    thread.start()
    thread.join()
    body = poll(api)
    assert ids_of(body) == added
    assert body["results"][0]["documents"][0]["url"].startswith(server.api_url + "/files/")


def test_add_fax_before_start_uses_the_server_url_once_started(sim: Simulator) -> None:
    job = sim.add_fax("abc123")
    assert job["documents"][0]["url"].startswith("http://127.0.0.1/faxin/rest/v1/files/")
    with SimulatorServer(sim) as server:
        assert sim.add_fax("abc123")["documents"][0]["url"].startswith(server.api_url)
        with httpx.Client(verify=TLS, auth=AUTH) as client:
            body = client.post(server.api_url + "/topics/abc123").json()
            # urls are built per request, so the early job is served with the real port too
            assert all(job["documents"][0]["url"].startswith(server.api_url)
                       for job in body["results"])
            assert urlsplit(server.base_url).port == server.port != 0


def test_stop_closes_idle_keep_alive_connections(sim: Simulator) -> None:
    server = SimulatorServer(sim).start()
    client = httpx.Client(verify=TLS, base_url=server.api_url, auth=AUTH)
    assert client.post("/topics/abc123").status_code == 200
    began = time.monotonic()
    server.stop()
    assert time.monotonic() - began < 2
    with pytest.raises(httpx.TransportError):
        client.post("/topics/abc123")
    client.close()


# -- /_sim/ ----------------------------------------------------------------------------------


def test_sim_add_fax_with_documents(simctl: httpx.Client, api: httpx.Client,
                                    server: SimulatorServer) -> None:
    pdf = one_page_pdf("from /_sim/")
    response = add(simctl, documents=[
        {"extension": "pdf", "content_base64": base64.b64encode(pdf).decode()}],
        senderIsdn="+4930111", routing="extra field")
    assert response.status_code == 201
    job = response.json()
    assert job["senderIsdn"] == "+4930111" and job["routing"] == "extra field"
    assert job["documents"][0]["url"].startswith(server.api_url + "/files/")
    polled = poll(api)["results"]
    assert polled == [job]  # "as a poll would show it"
    assert api.get(job["documents"][0]["url"]).content == pdf


def test_sim_add_fax_fills_every_field_and_generates_a_pdf(simctl: httpx.Client,
                                                          api: httpx.Client) -> None:
    job = add(simctl).json()
    for key in ("id", "callId", "costCenter", "dateReceived", "totalDuration", "senderIsdn",
                "senderFaxId", "receiverIsdn", "receiverFaxId", "faxResolution",
                "faxBaudRate", "faxPageCount", "faxClassicStatus", "faxNumericStatus",
                "archivingStatus", "archiveExpiry", "documents"):
        assert key in job
    content = api.get(job["documents"][0]["url"]).content
    assert content.startswith(b"%PDF") and job["faxPageCount"] == 1


def test_sim_add_fax_json_is_utf8(simctl: httpx.Client, api: httpx.Client) -> None:
    add(simctl, senderFaxId="Müller & Søn ☎")
    response = api.post("/topics/abc123")
    assert "Müller & Søn ☎".encode() in response.content  # raw UTF-8, not \u escapes
    assert response.json()["results"][0]["senderFaxId"] == "Müller & Søn ☎"


def test_sim_add_fax_given_id_duplicate_409_comma_400(simctl: httpx.Client) -> None:
    assert add(simctl, id=ODD_ID).json()["id"] == ODD_ID
    assert add(simctl, id=ODD_ID).status_code == 409
    assert add(simctl, id="a,b").status_code == 400
    assert add(simctl, "def456", id=ODD_ID).status_code == 201


@pytest.mark.parametrize("content", [
    b"not json", b"[1, 2]", b'{"documents": "x"}', b'{"documents": [{"extension": "pdf"}]}',
    b'{"documents": [{"extension": "pdf", "content_base64": "***"}]}',
    b'{"documents": [{"extension": "exe", "content_base64": "AAAA"}]}',
    b'{"dateReceived": "yesterday"}',
])
def test_sim_add_fax_bad_body_is_400(simctl: httpx.Client, content: bytes) -> None:
    assert simctl.post("/topics/abc123/faxes", content=content).status_code == 400
    assert topic_state(simctl)["available"] == 0


def test_sim_unknown_topic_is_404(simctl: httpx.Client) -> None:
    assert add(simctl, "nope").status_code == 404
    assert simctl.get("/topics/nope").status_code == 404


def test_sim_topic_state_counts_and_acks(simctl: httpx.Client, api: httpx.Client) -> None:
    ids = [add(simctl, id=str(n)).json()["id"] for n in range(5)]
    add(simctl, id="old", dateReceived="2001-02-03T04:05:06+0100")
    poll(api, fetch=2, timeout=100)
    poll(api, fetch=0, ids=f"{ids[1]},{ids[4]},zzz,{ids[4]},old")
    assert topic_state(simctl) == {
        "available": 2, "locked": 1, "acknowledged": 2, "expired": 1,
        "acks": [ids[1], ids[4], ids[4], "old"],
    }


def test_sim_clock(simctl: httpx.Client) -> None:
    response = simctl.post("/clock", json={"advance": 3600})
    assert response.status_code == 200 and response.json() == {"now": T0 + 3600}
    assert simctl.post("/clock", json={"advance": 0.5}).json() == {"now": T0 + 3600.5}
    for bad in ({"advance": -1}, {}, {"advance": "10"}, {"advance": True}):
        assert simctl.post("/clock", json=bad).status_code == 400


def test_sim_is_loopback_only(server: SimulatorServer) -> None:
    assert _is_loopback(("127.0.0.1", 1)) and _is_loopback(("::1", 1, 0, 0))
    assert _is_loopback(("::ffff:127.0.0.1", 1, 0, 0))
    assert not _is_loopback(("192.0.2.7", 1)) and not _is_loopback(None)
    # Only loopback addresses exist here, so hand the router a request from elsewhere.
    for peer, status in ((("192.0.2.7", 5000), 403), (("127.0.0.1", 5000), 200)):
        request = Request("GET", "/_sim/topics/abc123", "", {b"host": b"x"}, b"", peer)
        assert asyncio.run(server._dispatch(request)).status == status


# -- fault injection -------------------------------------------------------------------------


def set_faults(simctl: httpx.Client, **settings: Any) -> None:
    response = simctl.post("/faults", json=settings)
    assert response.status_code == 200, response.text


@pytest.mark.parametrize("status", [429, 500, 503, 520])
def test_status_fault_answers_before_processing(sim: Simulator, api: httpx.Client,
                                                simctl: httpx.Client, status: int) -> None:
    job_id = sim.add_fax("abc123")["id"]
    set_faults(simctl, rate=1.0, statuses=[status])
    response = api.post("/topics/abc123", params={"ids": job_id})
    assert response.status_code == status
    assert response.headers.get("retry-after") == ("1" if status == 429 else None)
    # no effect: nothing acknowledged, locked or recorded
    assert topic_state(simctl) == {"available": 1, "locked": 0, "acknowledged": 0,
                                   "expired": 0, "acks": []}
    # status faults come before credentials too
    with httpx.Client(verify=TLS, base_url=api.base_url) as bare:  # no credentials
        assert bare.get("/files/x.pdf").status_code == status


def test_faults_never_touch_sim_and_empty_body_clears(simctl: httpx.Client,
                                                     api: httpx.Client) -> None:
    set_faults(simctl, rate=1.0, statuses=[503], drop_rate=1.0, malformed_rate=1.0)
    for _ in range(5):
        assert simctl.get("/topics/abc123").status_code == 200
        assert add(simctl).status_code == 201
    assert api.post("/topics/abc123").status_code == 503
    assert simctl.post("/faults", json={}).json()["rate"] == 0.0
    assert len(ids_of(poll(api))) == 5


def test_fault_rate_is_partial(simctl: httpx.Client, api: httpx.Client) -> None:
    set_faults(simctl, rate=0.5, statuses=[500])
    codes = [api.post("/topics/abc123").status_code for _ in range(200)]
    assert 50 < codes.count(500) < 150 and codes.count(200) == 200 - codes.count(500)


def test_bad_fault_settings_are_400(simctl: httpx.Client) -> None:
    assert simctl.post("/faults", json={"rate": 2}).status_code == 400
    assert simctl.post("/faults", json={"statuses": ["500"]}).status_code == 400
    assert simctl.post("/faults", content=b"{").status_code == 400


def test_drop_closes_the_connection_after_processing(sim: Simulator, api: httpx.Client,
                                                     simctl: httpx.Client) -> None:
    job_id = sim.add_fax("abc123")["id"]
    set_faults(simctl, drop_rate=1.0)
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/topics/abc123")
    with pytest.raises(httpx.RemoteProtocolError):
        api.post("/topics/abc123", params={"fetch": 0, "ids": job_id})
    # the effect stays: it was locked by the first call, then acknowledged
    assert topic_state(simctl)["acknowledged"] == 1
    assert topic_state(simctl)["acks"] == [job_id]


def test_malformed_truncates_the_json_after_processing(sim: Simulator, api: httpx.Client,
                                                      simctl: httpx.Client) -> None:
    sim.add_fax("abc123")
    set_faults(simctl, malformed_rate=1.0)
    response = api.post("/topics/abc123")
    assert response.status_code == 200
    with pytest.raises(json.JSONDecodeError):
        json.loads(response.content)
    assert int(response.headers["content-length"]) == len(response.content) > 0
    assert topic_state(simctl)["locked"] == 1
    assert api.get("/files/nope.pdf").status_code == 404  # error replies stay as they are


def test_latency_delays_responses_without_blocking_others(server: SimulatorServer,
                                                          simctl: httpx.Client) -> None:
    set_faults(simctl, latency_ms=200)

    async def many(count: int) -> list[int]:
        limits = httpx.Limits(max_connections=count)
        async with httpx.AsyncClient(verify=TLS, base_url=server.api_url, auth=AUTH,
                                     limits=limits) as client:
            replies = await asyncio.gather(
                *(client.post("/topics/abc123?fetch=0") for _ in range(count)))
            return [r.status_code for r in replies]

    began = time.monotonic()
    assert asyncio.run(many(1)) == [200]
    assert time.monotonic() - began >= 0.2
    began = time.monotonic()
    assert asyncio.run(many(40)) == [200] * 40  # 8 s if served one after another
    assert time.monotonic() - began < 1.5
    began = time.monotonic()
    assert simctl.get("/topics/abc123").status_code == 200
    assert time.monotonic() - began < 0.15  # /_sim/ is never delayed


# -- the command line ------------------------------------------------------------------------


def start_cli(*args: str) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "faxflow.simulator", "--port", "0", *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    assert proc.stdout is not None
    return proc, proc.stdout.readline()


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_cli_prints_listening_line_serves_and_stops_on_signal(stop_with: int) -> None:
    proc, line = start_cli("--host", "127.0.0.1", "--user", "99999:secret",
                           "--user", "11111:x:y", "--topic", "abc123=99999",
                           "--topic", "t2=11111", "--samples", "3")
    try:
        match = re.fullmatch(r"listening on (http://127\.0\.0\.1:(\d+))\n", line)
        assert match, line
        base = match.group(1)
        with httpx.Client(verify=TLS, base_url=base + "/faxin/rest/v1", auth=AUTH) as client:
            body = client.post("/topics/abc123", params={"fetch": 10}).json()
            assert body["meta"]["resultSize"] == 3
            url = body["results"][0]["documents"][0]["url"]
            assert url.startswith(base + "/faxin/rest/v1/files/")
            assert client.get(url).content.startswith(b"%PDF")
            other = client.post("/topics/t2", auth=("11111", "x:y")).json()  # ':' in password
            assert other["meta"]["resultSize"] == 3
        proc.send_signal(stop_with)
        assert proc.wait(timeout=5) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


@pytest.mark.parametrize("args", [["--topic", "abc123=nobody"], ["--user", "nopassword"],
                                  ["--topic", "noowner"]])
def test_cli_rejects_bad_options(args: list[str]) -> None:
    proc, _ = start_cli("--user", "99999:secret", *args)
    assert proc.wait(timeout=10) == 2
    assert proc.stderr is not None and "Error" in proc.stderr.read()


def test_cli_port_in_use_fails() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = subprocess.Popen(
            [sys.executable, "-m", "faxflow.simulator", "--port", str(port)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        assert proc.wait(timeout=10) != 0
        assert proc.stdout is not None and "listening" not in proc.stdout.read()
