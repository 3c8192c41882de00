"""Destination `redmine` over real HTTP.

Every test runs twice: against a local fake Redmine (tests/servers/redmine.py) that answers
like Redmine's REST API and can inject faults, and against a real Redmine from Debian's
packages (tests/servers/redmine_real.py), reading back through its API. The fault-injection
tests (marked fake_only) need the fake and are skipped against the real one.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from faxflow_tickets import redmine
from servers import faxes
from servers.faxes import PDF, make_fax
from servers.redmine import FakeRedmine
from servers.redmine_real import real_redmine  # noqa: F401  (session fixture)

from faxflow.app import App
from faxflow.types import Fax, Outcome, Route


@dataclass
class Target:
    url: str
    key: str
    fake: FakeRedmine | None
    project: str = "fax"

    def api(self) -> httpx.Client:
        return httpx.Client(base_url=self.url, headers={"X-Redmine-API-Key": self.key},
                            timeout=10)

    def issues_with_subject(self, text: str) -> list[dict[str, Any]]:
        params: list[tuple[str, str | int | float | bool | None]] = [
            ("set_filter", "1"), ("f[]", "status_id"), ("op[status_id]", "*"),
            ("f[]", "subject"), ("op[subject]", "~"), ("v[subject][]", text)]
        with self.api() as api:
            answer = api.get("/issues.json", params=params)
            answer.raise_for_status()
            issues: list[dict[str, Any]] = answer.json()["issues"]
            return issues

    def attachments(self, issue_id: str) -> dict[str, bytes]:
        with self.api() as api:
            issue = api.get(f"/issues/{issue_id}.json", params={"include": "attachments"})
            issue.raise_for_status()
            return {a["filename"]: api.get(a["content_url"]).content
                    for a in issue.json()["issue"]["attachments"]}


@pytest.fixture(params=["fake", pytest.param("real", marks=pytest.mark.redmine)])
def target(request: pytest.FixtureRequest) -> Iterator[Target]:
    """Each test runs against the fake and against a real Redmine (see redmine_real)."""
    if request.param == "real":
        if request.node.get_closest_marker("fake_only"):
            pytest.skip("needs the fake to inject faults")
        real = request.getfixturevalue("real_redmine")
        yield Target(real.url, real.key, None, real.project)
        return
    fake = FakeRedmine(projects=("fax",))
    fake.start()
    yield Target(fake.url, fake.api_key, fake, "fax")
    fake.stop()


def app_for(target: Target, key: str | None = None) -> App:
    toml = (f'[plugins.redmine]\nurl = "{target.url}"\napi_key = "{key or target.key}"\n'
            "retry_delay = 0.01\ntimeout = 10\n")
    return faxes.make_app({"redmine": redmine}, toml)


def unique_fax(tmp_path: Path, target: Target) -> tuple[Fax, Route, str]:
    """A fax with an id and subject of its own, so runs against a real Redmine never meet."""
    token = uuid.uuid4().hex[:12]
    fax = make_fax(tmp_path / "spool", f"fax-{token}")
    route = Route("redmine/0", "redmine", {"project": target.project,
                                           "subject": f"Fax {token}"})
    return fax, route, token


def test_creates_issue_with_attachment(target: Target, tmp_path: Path) -> None:
    fax, route, token = unique_fax(tmp_path, target)
    result = app_for(target).deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    (issue,) = target.issues_with_subject(token)
    assert str(issue["id"]) == result.reference
    assert "faxflow-" in issue["description"]
    assert target.attachments(str(issue["id"])) == {f"fax-{token}.pdf": PDF}


def test_redelivery_never_opens_a_second_issue(target: Target, tmp_path: Path) -> None:
    fax, route, token = unique_fax(tmp_path, target)
    app = app_for(target)
    first = app.deliver(fax, route, uncertain=False)
    again = app.deliver(fax, route, uncertain=True)
    assert first and again and first.outcome is Outcome.DELIVERED
    assert first.reference == again.reference
    assert len(target.issues_with_subject(token)) == 1


def test_unknown_project_is_permanent(target: Target, tmp_path: Path) -> None:
    fax, route, _ = unique_fax(tmp_path, target)
    route = Route(route.key, "redmine", {**route.options, "project": "no-such-project-x"})
    result = app_for(target).deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT, result
    assert "422" in result.detail or "404" in result.detail


def test_wrong_key_is_transient(target: Target, tmp_path: Path) -> None:
    fax, route, _ = unique_fax(tmp_path, target)
    result = app_for(target, "not-the-key-0000").deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.TRANSIENT
    assert "401" in result.detail and "not-the-key-0000" not in result.detail


@pytest.mark.fake_only
def test_lost_create_answer_is_checked_not_resent(target: Target, tmp_path: Path) -> None:
    assert target.fake is not None
    target.fake.fail("POST", r"/issues\.json")
    fax, route, token = unique_fax(tmp_path, target)
    result = app_for(target).deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.DELIVERED, result
    assert len(target.issues_with_subject(token)) == 1
    assert target.fake.count("POST", r"/issues\.json") == 1


@pytest.mark.fake_only
def test_upload_too_large_is_permanent(target: Target, tmp_path: Path) -> None:
    assert target.fake is not None
    target.fake.max_upload = 10
    fax, route, _ = unique_fax(tmp_path, target)
    result = app_for(target).deliver(fax, route, uncertain=False)
    assert result is not None and result.outcome is Outcome.PERMANENT
    assert "maximum allowed file size" in result.detail


@pytest.mark.fake_only
def test_server_errors_then_success(target: Target, tmp_path: Path) -> None:
    assert target.fake is not None
    target.fake.fail("GET", r"/issues\.json", 502, b"Bad Gateway", times=2)
    fax, route, token = unique_fax(tmp_path, target)
    result = app_for(target).deliver(fax, route, uncertain=True)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert len(target.issues_with_subject(token)) == 1


def test_check_options() -> None:
    assert redmine.check_options({"project": "{{ p }}", "tracker_id": 2}) == []
    assert redmine.check_options({"tracker_id": []}) == [
        "project: required", "tracker_id: must be an integer or a string"]


@pytest.mark.fake_only
def test_lookup_that_ignores_the_filter_is_not_trusted(target: Target, tmp_path: Path) -> None:
    """A Redmine (or proxy) that ignored the description filter would answer with any issue:
    only an issue carrying our marker counts as ours."""
    assert target.fake is not None
    target.fake.fail("GET", r"/issues\.json", 200,
                     {"issues": [{"id": 99, "description": "someone else's"}],
                      "total_count": 1})
    fax, route, token = unique_fax(tmp_path, target)
    result = app_for(target).deliver(fax, route, uncertain=True)
    assert result is not None and result.outcome is Outcome.DELIVERED
    assert result.reference != "99"
    assert len(target.issues_with_subject(token)) == 1
