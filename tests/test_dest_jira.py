"""Destination `jira` over real HTTP against a local fake Jira (tests/servers/jira.py):
Jira cannot run here, so the fake implements exactly the endpoints the plugin calls (search,
create issue, add attachment) with Jira's documented error answers (400, 401, 403, 404, 413,
429 with Retry-After, 5xx) and lost answers."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from faxflow_tickets import jira
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.jira import FakeJira

from faxflow import delivery
from faxflow.app import App
from faxflow.types import Outcome, Route

ROUTE = Route("tickets/0", "jira", {"project": "FAX", "labels": ["inbound fax"]})
CREATE = r"/rest/api/2/issue"
ATTACH = r"/rest/api/2/issue/[^/]+/attachments"


@pytest.fixture
def server() -> Iterator[FakeJira]:
    fake = FakeJira()
    fake.start()
    yield fake
    fake.stop()


def app_for(fake: FakeJira, **extra: str) -> App:
    lines = ["[plugins.jira]", f'url = "{fake.url}"', 'email = "fax@example.test"',
             'api_token = "jira-tok"', "retry_delay = 0.01", "timeout = 5"]
    lines += [f'{k} = "{v}"' for k, v in extra.items()]
    return faxes.make_app({"jira": jira}, "\n".join(lines) + "\n")


def test_creates_issue_with_attachment_and_marker(server: FakeJira, tmp_path: Path) -> None:
    fax = make_fax(tmp_path / "spool")
    result = app_for(server).deliver(fax, ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (issue,) = server.issues.values()
    assert result.reference == issue["key"] == "FAX-1"
    fields = issue["fields"]
    marker = f"faxflow-{delivery.stable_key(fax, ROUTE)[:32]}"
    assert fields["labels"] == ["inbound_fax", marker]
    assert fields["summary"] == "Fax from +49891234567 (fax-1)"
    assert fields["issuetype"] == {"name": "Task"}
    assert issue["attachments"] == {"fax-1.pdf": PDF}
    assert f"{server.url}/browse/FAX-1" in result.detail


def test_redelivery_never_opens_a_second_issue(server: FakeJira, tmp_path: Path) -> None:
    app = app_for(server)
    fax = make_fax(tmp_path / "spool")
    first = app.deliver(fax, ROUTE, uncertain=False)
    again = app.deliver(fax, ROUTE, uncertain=True)
    third = app.deliver(fax, ROUTE, uncertain=False)  # even when the core is sure
    assert first and again and third
    assert first.reference == again.reference == third.reference
    assert len(server.issues) == 1
    assert server.count("POST", ATTACH) == 1


def test_lost_create_answer_is_checked_not_resent(server: FakeJira, tmp_path: Path) -> None:
    server.fail("POST", CREATE)  # the issue is created, the answer never arrives
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    assert len(server.issues) == 1
    assert server.count("POST", CREATE) == 1
    assert list(server.issues["FAX-1"]["attachments"]) == ["fax-1.pdf"]


def test_crash_between_create_and_attach_completes_later(server: FakeJira,
                                                         tmp_path: Path) -> None:
    app = app_for(server)
    fax = make_fax(tmp_path / "spool")
    server.fail("POST", ATTACH, 503, {"errorMessages": ["down"]})
    down = app.deliver(fax, ROUTE, uncertain=False)
    assert down is not None and down.outcome is Outcome.TRANSIENT
    assert "503" in down.detail and "down" in down.detail
    assert server.issues["FAX-1"]["attachments"] == {}
    up = app.deliver(fax, ROUTE, uncertain=True)
    assert up is not None and up.outcome is Outcome.DELIVERED
    assert len(server.issues) == 1
    assert server.issues["FAX-1"]["attachments"] == {"fax-1.pdf": PDF}


def test_429_retry_after_is_honoured(server: FakeJira, tmp_path: Path) -> None:
    server.fail("GET", r"/rest/api/3/search/jql", 429, {"errorMessages": ["Rate limited"]},
                {"Retry-After": "0"})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=True)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert server.count("GET", r"/rest/api/3/search/jql") == 2


def test_long_retry_after_ends_the_attempt(server: FakeJira, tmp_path: Path) -> None:
    server.fail("GET", r"/rest/api/3/search/jql", 429, {"errorMessages": ["Rate limited"]},
                {"Retry-After": "3600"})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=True)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "429" in result.detail and "Rate limited" in result.detail
    assert server.issues == {}


def test_bad_project_is_permanent_with_jira_message(server: FakeJira, tmp_path: Path) -> None:
    route = Route("tickets/0", "jira", {"project": "NOPE"})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), route, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "400" in result.detail and "valid project is required" in result.detail


def test_wrong_token_is_transient_and_secret_free(server: FakeJira, tmp_path: Path) -> None:
    toml = (f'[plugins.jira]\nurl = "{server.url}"\nemail = "fax@example.test"\n'
            'api_token = "WRONG-secret-1"\nretries = 1\n')
    app = faxes.make_app({"jira": jira}, toml)
    result = app.deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "401" in result.detail and "WRONG-secret-1" not in result.detail


def test_attachment_too_large_is_permanent(tmp_path: Path) -> None:
    fake = FakeJira(max_attachment=10)
    fake.start()
    try:
        result = app_for(fake).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
        assert result is not None and result.outcome is Outcome.PERMANENT
        assert "413" in result.detail
    finally:
        fake.stop()


def test_server_deployment_uses_v2_search_and_bearer(tmp_path: Path) -> None:
    fake = FakeJira()
    fake.auth = "Bearer pat-123"
    fake.start()
    try:
        toml = (f'[plugins.jira]\nurl = "{fake.url}"\ntoken = "pat-123"\n'
                'deployment = "server"\n')
        app = faxes.make_app({"jira": jira}, toml)
        result = app.deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=True)
        assert result is not None and result.outcome is Outcome.DELIVERED
        assert fake.count("GET", r"/rest/api/2/search") == 1
    finally:
        fake.stop()


def test_server_unreachable_is_transient(tmp_path: Path) -> None:
    fake = FakeJira()
    fake.start()
    url = fake.url
    fake.stop()
    toml = (f'[plugins.jira]\nurl = "{url}"\nemail = "a@b.test"\napi_token = "x"\n'
            "retries = 2\nretry_delay = 0.01\n")
    result = faxes.make_app({"jira": jira}, toml).deliver(
        make_fax(tmp_path / "spool"), ROUTE, uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "cannot connect" in result.detail


def test_check_options_and_config() -> None:
    assert jira.check_options({"project": "{{ rule.project }}", "fields": {"x": 1}}) == []
    assert jira.check_options({}) == ["project: required"]
    import faxflow.config
    config, _ = faxflow.config.parse('[plugins.jira]\nurl = "ftp://x"\ndeployment = "dc"\n')
    paths = {p.path[-1] for p in jira.faxflow_check_config(config)}
    assert paths == {"url", "deployment", "api_token"}


def test_search_hit_without_our_label_is_not_trusted(server: FakeJira, tmp_path: Path) -> None:
    server.fail("GET", r"/rest/api/3/search/jql", 200,
                {"issues": [{"id": "1", "key": "FAX-99", "fields": {"labels": ["other"]}}]})
    result = app_for(server).deliver(make_fax(tmp_path / "spool"), ROUTE, uncertain=True)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert result.reference == "FAX-1"
