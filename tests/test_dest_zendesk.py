"""Destination `zendesk` over real HTTP against a local fake Zendesk (tests/servers/
zendesk.py): Zendesk cannot run here, so the fake implements exactly the endpoints the plugin
calls (uploads, ticket lookup by external_id, create with Idempotency-Key) with Zendesk's
documented error answers (401, 413, 422, 429 with Retry-After, 5xx) and lost answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faxflow_tickets import zendesk
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.zendesk import FakeZendesk

from faxflow import delivery
from faxflow.app import App
from faxflow.types import Outcome, Route

ROUTE = Route("support/0", "zendesk", {"subject": "Fax: order 17", "tags": ["fax", "order"],
                                       "priority": "high"})
TICKETS = r"/api/v2/tickets\.json"


@pytest.fixture
def server() -> Iterator[FakeZendesk]:
    fake = FakeZendesk()
    fake.start()
    yield fake
    fake.stop()


def app_for(fake: FakeZendesk, token: str = "zd-tok") -> App:
    toml = (f'[plugins.zendesk]\nurl = "{fake.url}"\nemail = "agent@example.test"\n'
            f'api_token = "{token}"\nretry_delay = 0.01\ntimeout = 5\n')
    return faxes.make_app({"zendesk": zendesk}, toml)


def test_uploads_then_creates_ticket(server: FakeZendesk, tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool", searchable=True)
    route = Route(ROUTE.key, "zendesk", {**ROUTE.options, "content": "both"})
    result = app_for(server).deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (ticket,) = server.tickets.values()
    assert result.reference == "1"
    assert ticket["external_id"] == f"faxflow-{delivery.stable_key(fax, route)[:32]}"
    assert ticket["subject"] == "Fax: order 17"
    assert ticket["tags"] == ["fax", "order", "faxflow"]
    assert ticket["attachments"] == ["fax-1.pdf", "fax-1.searchable.pdf"]
    assert ticket["files"][0] == PDF
    assert "Sender fax id: ACME Ltd" in ticket["description"]
    create = next(r for r in server.requests if r.method == "POST" and r.path.endswith(
        "tickets.json"))
    assert create.headers["idempotency-key"] == ticket["external_id"]


def test_redelivery_never_opens_a_second_ticket(server: FakeZendesk, tmp_path: Path) -> None:
    app = app_for(server)
    fax = make_fax(tmp_path / "spool")
    first = app.deliver(fax, ROUTE, uncertain=False)
    again = app.deliver(fax, ROUTE, uncertain=True)
    assert first and again and first.reference == again.reference
    assert len(server.tickets) == 1
    assert server.count("POST", r"/api/v2/uploads\.json") == 1


def test_lost_create_answer_is_checked_not_resent(server: FakeZendesk, tmp_path: Path) -> None:
    server.fail("POST", TICKETS)
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    assert len(server.tickets) == 1
    assert server.count("POST", TICKETS) == 1


def test_503_on_create_then_created_once(server: FakeZendesk, tmp_path: Path) -> None:
    server.fail("POST", TICKETS, 503, {"error": "Service Unavailable"})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    assert len(server.tickets) == 1
    assert server.count("POST", TICKETS) == 2  # looked up in between, found nothing


def test_rate_limit_is_retried(server: FakeZendesk, tmp_path: Path) -> None:
    server.fail("POST", r"/api/v2/uploads\.json", 429, {"error": "TooManyRequests"},
                {"Retry-After": "0"}, times=2)
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert len(server.tickets) == 1


def test_record_invalid_is_permanent(server: FakeZendesk, tmp_path: Path) -> None:
    server.fail("POST", TICKETS, 422, {"error": "RecordInvalid",
                                       "description": "Record validation errors",
                                       "details": {"requester": [{"description": "bad"}]}})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "422" in result.detail and "RecordInvalid" in result.detail
    assert server.tickets == {}


def test_upload_too_large_is_permanent(tmp_path: Path) -> None:
    fake = FakeZendesk(max_upload=10)
    fake.start()
    try:
        result = app_for(fake).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
        assert result is not None and result.outcome is Outcome.PERMANENT
        assert "413" in result.detail
        assert fake.tickets == {}
    finally:
        fake.stop()


def test_wrong_token_is_transient(server: FakeZendesk, tmp_path: Path) -> None:
    result = app_for(server, "nope-secret").deliver(make_fax(tmp_path / "spool"), ROUTE, False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "401" in result.detail and "nope-secret" not in result.detail


def test_check_options() -> None:
    assert zendesk.check_options({"subject": "{{ x }}", "priority": "{{ p }}"}) == []
    assert zendesk.check_options({"priority": "asap"}) == [
        "priority: must be one of low, normal, high, urgent"]


def test_rendered_group_id_that_is_not_a_number_is_permanent(server: FakeZendesk,
                                                             tmp_path: Path) -> None:
    route = Route("support/0", "zendesk", {"group_id": "sales"})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), route, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert result.detail.startswith("group_id: not a number")
