"""The web console over real HTTP (uvicorn in a thread, httpx as the client), on a journal
filled directly through its records: configuration checks, the command, sign-in and its
limits, sessions, CSRF, roles, the trusted header, headers, documents as PNG only, searches
kept out of URLs and logs, errors without details, bulk actions.

The browser-side attacks (XSS, forged cross-site forms) are in test_console_browser.py.
"""

from __future__ import annotations

import contextlib
import io
import logging
import re
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from click.testing import CliRunner
from faxflow_console import SETTINGS, Loaded, serve, settings
from faxflow_console.web import LOGIN_FAILED, LOGIN_LIMITED, build
from PIL import Image

from faxflow.app import App, load_app
from faxflow.cli import build_cli
from faxflow.errors import ConfigError
from faxflow.journal import open_journal
from faxflow.simulator.minipdf import one_page_pdf

PASSWORD = "correct horse battery staple"
HASH = PasswordHasher().hash(PASSWORD)
SECRET = "k" * 48
CONFIG = f"""\
[journal]
path = "journal.sqlite"

[plugins.folder]
base = "out"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"

[[rule]]
name = "archive"
when.csid = "NEVER"
[[rule.route]]
type = "folder"
path = "archive"

[plugins.console]
secret = "{SECRET}"
session_minutes = 30
[plugins.console.users.alice]
password_hash = "{HASH}"
role = "operator"
[plugins.console.users.victor]
password_hash = "{HASH}"
"""


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@dataclass
class Console:
    app: App
    base: str
    clock: Clock
    path: Path

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base, follow_redirects=False, timeout=30)

    def quarantine(self, fax_id: str, *, reason: str = "folder out does not exist",
                   csid: str | None = None, sender: str = "+498912345",
                   documents: list[tuple[str, str, bytes]] | None = None) -> int:
        assert self.app.journal is not None
        records = self.app.journal.records
        records.event("t", fax_id, "received", "w1", "attempt 1", status="processing")
        from faxflow.records import Info

        records.describe("t", fax_id, Info(sender=sender, receiver="+4989262080440",
                                           csid=csid))
        docs = documents if documents is not None else [
            (f"{fax_id}.pdf", "pdf", one_page_pdf(f"fax {fax_id}"))]
        return records.quarantine("t", fax_id, docs, [reason], {}, {}, [], None, "w1")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def running(tmp_path: Path, config_text: str = CONFIG) -> Iterator[Console]:
    """The console on a fresh journal, served by uvicorn in a thread on a free port."""
    (tmp_path / "out").mkdir(exist_ok=True)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text)
    app = load_app(config, load=["rules", "folder", "history", "console"])
    app.journal = open_journal("sqlite", tmp_path / "journal.sqlite")
    clock = Clock()
    asgi, _ = build(app, clock)
    port = free_port()
    server = serve.server_for(asgi, "127.0.0.1", port)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not server.started:
        assert time.monotonic() < deadline and thread.is_alive()
        time.sleep(0.02)
    try:
        yield Console(app, f"http://127.0.0.1:{port}", clock, tmp_path)
    finally:
        server.should_exit = True
        thread.join(10)
        app.journal.close()


@pytest.fixture
def console(tmp_path: Path) -> Iterator[Console]:
    with running(tmp_path) as started:
        yield started


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([^"]+)"', html)
    assert found, html[:500]
    return found.group(1)


def sign_in(client: httpx.Client, user: str, password: str = PASSWORD) -> httpx.Response:
    token = csrf(client.get("/login").text)
    return client.post("/login", data={"username": user, "password": password,
                                       "csrf": token})


def signed_in(console: Console, user: str = "alice") -> httpx.Client:
    client = console.client()
    assert sign_in(client, user).status_code == 303
    return client


# --- configuration and the command --------------------------------------------------------


def check(tmp_path: Path, table: str) -> str:
    config = tmp_path / "c.toml"
    config.write_text(table)
    try:
        load_app(config, load=["console"])
    except ConfigError as exc:
        return str(exc)
    return ""


def test_the_console_table_is_checked_with_file_line_and_key(tmp_path: Path) -> None:
    assert check(tmp_path, "") == ""  # no table: a site without the console
    assert check(tmp_path, '[plugins.console]\nsecret = ""\n') == ""  # workers share the file
    problems = check(tmp_path, f"""\
[plugins.console]
listen = "somewhere"
secret = "short"
session_minutes = 0
base_url = "ftp://x"
colour = "blue"
trusted_header = "X-Forwarded-User"
[plugins.console.users.alice]
password_hash = "md5:abc"
[plugins.console.users.bob]
password_hash = "{HASH}"
role = "admin"
""")
    for expected in ("c.toml:2: plugins.console.listen: must be host:port",
                     "c.toml:3: plugins.console.secret: too short",
                     "plugins.console.session_minutes: must be a whole number",
                     "plugins.console.base_url: must be the console's public address",
                     "plugins.console.colour: unknown option",
                     "plugins.console.trusted_proxies: required with trusted_header",
                     "c.toml:9: plugins.console.users.alice.password_hash: not an argon2 hash",
                     "plugins.console.users.bob.role: must be viewer or operator"):
        assert expected in problems, problems
    assert "short" not in problems.split("secret:")[0]  # the secret's value is not echoed


def test_the_command_explains_what_is_missing_without_a_traceback(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    config = tmp_path / "c.toml"
    config.write_text('[plugins.console]\nsecret = ""\n')
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "console")
    runner = CliRunner()
    result = runner.invoke(build_cli(), ["console", "-c", str(config)])
    assert result.exit_code == 1, result.output
    assert "plugins.console.secret: required to run the console" in result.output
    assert "users: nobody can sign in" in result.output

    real = serve.importlib.util.find_spec
    monkeypatch.setattr(serve.importlib.util, "find_spec",
                        lambda name, *a: None if name in ("starlette", "argon2")
                        else real(name, *a))
    result = runner.invoke(build_cli(), ["console", "-c", str(config)])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert ("needs the console extra, which is not installed here: pip install "
            "'faxflow[console]' (missing: starlette, argon2-cffi)") in result.output


def test_hash_password_makes_a_hash_the_console_accepts() -> None:
    result = CliRunner().invoke(build_cli(), ["console", "hash-password"],
                                input="a good long password\n")
    assert result.exit_code == 0, result.output
    hashed = result.output.strip().splitlines()[-1]
    assert settings.ARGON2.match(hashed) and hashed.startswith("$argon2id$")
    assert PasswordHasher().verify(hashed, "a good long password")
    assert "a good long password" not in result.output
    short = CliRunner().invoke(build_cli(), ["console", "hash-password"], input="short\n")
    assert short.exit_code == 1 and "at least 10 characters" in short.output


# --- signing in ---------------------------------------------------------------------------


def test_sign_in_answers_alike_for_an_unknown_user_and_a_wrong_password(
        console: Console) -> None:
    client = console.client()
    assert client.get("/").headers["location"] == "/login"
    timings: dict[str, list[float]] = {"wrong": [], "unknown": []}
    pages = {}
    for i in range(3):
        for kind, user, password in (("wrong", "alice", "nope"),
                                     ("unknown", f"mallory{i}", PASSWORD)):
            started = time.perf_counter()
            response = sign_in(client, user, password)
            timings[kind].append(time.perf_counter() - started)
            assert response.status_code == 200 and LOGIN_FAILED in response.text
            pages[kind] = response.text.replace(f'value="{user}"', "")
    assert pages["wrong"] == pages["unknown"]  # not a byte tells them apart
    wrong, unknown = (sorted(t)[1] for t in timings.values())
    assert 0.33 < unknown / wrong < 3, timings  # both pay for one argon2 check
    assert sign_in(client, "alice").status_code == 303
    assert "Overview" in client.get("/").text


def test_sign_in_is_limited_per_user_name_and_per_address(console: Console) -> None:
    client = console.client()
    for _ in range(5):
        assert LOGIN_FAILED in sign_in(client, "alice", "guess").text
    limited = sign_in(client, "alice")  # the right password, too late
    assert limited.status_code == 429 and LOGIN_LIMITED in limited.text
    for _ in range(5):
        sign_in(client, "nobody", "guess")  # unknown names are limited the same way
    assert LOGIN_LIMITED in sign_in(client, "nobody", "guess").text
    assert sign_in(client, "victor").status_code == 303  # another user: still fine
    for i in range(10):
        sign_in(console.client(), f"name{i}", "guess")  # 20 failures from this address
    assert LOGIN_LIMITED in sign_in(console.client(), "victor").text


def test_sessions_expire_end_at_logout_and_follow_the_configuration(
        console: Console) -> None:
    client = signed_in(console)
    cookie = client.cookies.get("faxflow_console")
    assert client.get("/").status_code == 200
    console.clock.now += 29 * 60
    assert client.get("/").status_code == 200
    console.clock.now += 2 * 60  # 31 minutes after signing in: session_minutes is 30
    assert client.get("/").headers["location"] == "/login"

    client = signed_in(console)
    cookie = client.cookies.get("faxflow_console")
    page = client.get("/").text
    assert client.post("/logout", data={"csrf": csrf(page)}).status_code == 303
    replay = console.client()
    replay.cookies.set("faxflow_console", cookie)
    assert replay.get("/").headers["location"] == "/login"  # the old cookie is dead

    client = signed_in(console, "victor")
    loaded = console.app.stash[SETTINGS]
    users = dict(loaded.settings.users)
    users["victor"] = settings.User("victor", "viewer", PasswordHasher().hash("new password!"))
    console.app.stash[SETTINGS] = Loaded(
        settings.Settings(**{**_fields(loaded.settings), "users": users}), time.time())
    assert client.get("/").headers["location"] == "/login"  # a new password ends sessions


def _fields(s: settings.Settings) -> dict[str, object]:
    return {name: getattr(s, name) for name in s.__dataclass_fields__}


def test_cookie_flags_and_security_headers(console: Console) -> None:
    client = console.client()
    login = client.get("/login")
    cookie = login.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/" in cookie
    assert "Secure" not in cookie  # no https base_url
    headers = login.headers
    assert "'unsafe-inline'" not in headers["content-security-policy"]
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-content-type-options"] == "nosniff"
    assert headers["x-frame-options"] == "DENY"
    assert headers["referrer-policy"] == "no-referrer"
    assert headers["cache-control"] == "no-store"
    assert "server" not in headers
    css = client.get("/static/console.css")
    assert css.status_code == 200 and "max-age" in css.headers["cache-control"]
    assert "<script>" not in login.text and " style=" not in login.text  # CSP-clean
    assert client.get("/static/../web.py").status_code == 404

    loaded = console.app.stash[SETTINGS]
    console.app.stash[SETTINGS] = Loaded(settings.Settings(
        **{**_fields(loaded.settings), "base_url": "https://fax.example.org"}), time.time())
    secure = console.client().get("/login")
    assert "Secure" in secure.headers["set-cookie"]
    assert secure.headers["strict-transport-security"].startswith("max-age=")


# --- roles, CSRF, actions ------------------------------------------------------------------


def test_actions_need_an_operator_and_the_sessions_token(console: Console) -> None:
    ident = console.quarantine("f1")
    viewer = signed_in(console, "victor")
    page = viewer.get(f"/faxes/{ident}").text
    assert "Release</button>" not in page and "Dismiss</button>" not in page
    refused = viewer.post(f"/quarantine/{ident}/dismiss",
                          data={"csrf": csrf(page), "note": "viewer"})
    assert refused.status_code == 403 and "Only operators" in refused.text

    alice = signed_in(console)
    page = alice.get(f"/faxes/{ident}").text
    token = csrf(page)
    assert alice.post(f"/quarantine/{ident}/dismiss", data={"note": "x"}).status_code == 403
    other = signed_in(console)  # alice in another browser: another session, another token
    assert other.post(f"/quarantine/{ident}/dismiss",
                      data={"note": "x", "csrf": token}).status_code == 403
    evil = alice.post(f"/quarantine/{ident}/dismiss", data={"note": "x", "csrf": token},
                      headers={"origin": "https://evil.example"})
    assert evil.status_code == 403
    assert console.app.journal.records.quarantine_item(ident).state == "open"

    done = alice.post(f"/quarantine/{ident}/dismiss",
                      data={"note": "junk <b>fax</b>", "csrf": token})
    assert done.status_code == 303 and done.headers["location"] == f"/faxes/{ident}"
    shown = alice.get(f"/faxes/{ident}").text
    assert f"#{ident} dismissed" in shown
    assert "by alice" in shown and "junk &lt;b&gt;fax&lt;/b&gt;" in shown
    item = console.app.journal.records.quarantine_item(ident)
    assert item.state == "dismissed" and item.resolved_by == "alice"


def test_release_and_route_from_the_queue_and_the_detail_page(console: Console) -> None:
    first, second = console.quarantine("f1"), console.quarantine("f2")
    alice = signed_in(console)
    queue = alice.get("/quarantine").text
    released = alice.post(f"/quarantine/{first}/release",
                          data={"csrf": csrf(queue), "back": "queue"})
    assert released.headers["location"] == "/quarantine"
    after = alice.get("/quarantine").text
    assert "released: delivered to default/0" in after and f"#{first}<" not in after
    page = alice.get(f"/faxes/{second}").text
    assert '<option value="archive">' in page
    routed = alice.post(f"/quarantine/{second}/route",
                        data={"csrf": csrf(page), "target": "archive"})
    assert routed.status_code == 303
    assert "delivered to archive/0" in alice.get(f"/faxes/{second}").text
    assert len(list((console.path / "out").glob("*.pdf"))) == 1
    assert len(list((console.path / "out" / "archive").glob("*.pdf"))) == 1
    unknown = alice.post(f"/quarantine/{second}/explode", data={"csrf": csrf(page)})
    assert unknown.status_code == 404


def test_bulk_action_on_a_searched_reason_needs_a_confirmation(console: Console) -> None:
    smtp = [console.quarantine(f"s{i}", reason="SMTP 550 mailbox unavailable")
            for i in range(3)]
    other = console.quarantine("o1", reason="damaged PDF")
    alice = signed_in(console)
    queue = alice.get("/quarantine").text
    assert "3 \u00d7" in queue and "1 \u00d7" in queue  # grouped by reason
    search = alice.post("/quarantine/search", data={"csrf": csrf(queue), "reason": "smtp 550",
                                                    "state": "open"})
    location = search.headers["location"]
    assert re.fullmatch(r"/quarantine\?q=[\w-]+", location)
    found = alice.get(location).text
    assert all(f"#{i}<" in found for i in smtp) and f"#{other}<" not in found
    q = location.split("=", 1)[1]
    unconfirmed = alice.post("/quarantine/bulk", data={
        "csrf": csrf(found), "q": q, "action": "dismiss", "note": "spam"})
    assert unconfirmed.status_code == 303
    assert "Nothing was done" in alice.get(unconfirmed.headers["location"]).text
    done = alice.post("/quarantine/bulk", data={"csrf": csrf(found), "q": q, "confirm": "yes",
                                                "action": "dismiss", "note": "spam"})
    assert done.status_code == 200 and "3 of 3 done" in done.text
    records = console.app.journal.records
    assert [records.quarantine_item(i).state for i in smtp] == ["dismissed"] * 3
    assert records.quarantine_item(other).state == "open"


# --- data in pages, URLs and logs ---------------------------------------------------------


def test_searches_by_number_keep_the_number_out_of_urls_and_logs(
        console: Console, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    wanted = console.quarantine("a", sender="+4930999111")
    console.quarantine("b", sender="+4940555666")
    alice = signed_in(console)
    page = alice.get("/faxes").text
    search = alice.post("/faxes/search", data={"csrf": csrf(page), "sender": "030 999"})
    location = search.headers["location"]
    assert "999" not in location and re.fullmatch(r"/faxes\?q=[\w-]+", location)
    found = alice.get(location).text
    assert f"#{wanted}<" in found and "+4940555666" not in found
    assert 'value="030 999"' in found  # the form shows what was asked
    assert alice.get(location + "x").text.count("This search has expired") == 1
    elsewhere = signed_in(console)  # another session cannot use the token
    assert "This search has expired" in elsewhere.get(location).text
    logged = caplog.text
    assert "999" not in logged and "+4940555666" not in logged and "030" not in logged
    assert re.search(r"GET /faxes 200 \d+ ms", logged)


def test_quick_filters_in_the_query_string_only_name_nothing_personal(
        console: Console) -> None:
    for i in range(60):
        console.quarantine(f"p{i}")
    alice = signed_in(console)
    first = alice.get("/faxes?status=quarantined&period=today").text
    assert first.count('<th scope="row"><a href="/faxes/') == 50
    after = re.search(r'href="(/faxes\?status=quarantined&amp;period=today&amp;after=[^"]+)"',
                      first)
    assert after, "a next-page link"
    second = alice.get(after.group(1).replace("&amp;", "&")).text
    assert second.count('<th scope="row"><a href="/faxes/') == 10
    ignored = alice.get("/faxes?sender=%2B4989&status=nonsense").text
    assert ignored.count('<th scope="row"><a href="/faxes/') == 50  # unfiltered


def test_hostile_fax_data_is_escaped_everywhere(console: Console) -> None:
    payload = '<script>alert(1)</script>"><img src=x onerror=alert(2)>'
    ident = console.quarantine("x", reason=f"reason {payload}", csid=payload,
                               documents=[(payload, payload, one_page_pdf("x"))])
    from faxflow.records import Info

    assert console.app.journal is not None
    console.app.journal.records.describe("t", "x", Info(
        fields={payload: payload}, labels=[payload], rules=[payload], text=payload,
        routes=[{"key": payload, "type": payload, "rule": payload}]))
    console.app.journal.records.event("t", "x", payload, payload, payload)
    alice = signed_in(console)
    for path in ("/faxes", f"/faxes/{ident}", "/quarantine", "/"):
        html = alice.get(path).text
        assert "<script>alert" not in html and "<img src=x" not in html, path
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in alice.get(f"/faxes/{ident}").text
    download = alice.get(f"/faxes/{ident}/documents/1/download")
    assert download.headers["content-type"] == "application/pdf"
    assert download.headers["content-disposition"] == \
        f'attachment; filename="fax-{ident}-1.pdf"'
    assert "sandbox" in download.headers["content-security-policy"]


def test_an_internal_error_shows_no_details_and_logs_none(
        console: Console, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    ident = console.quarantine("e")
    alice = signed_in(console)
    assert console.app.journal is not None

    def broken(_: int) -> None:
        raise ValueError("patient +4989123 Jane Doe")

    monkeypatch.setattr(console.app.journal.records, "fax", broken)
    caplog.set_level(logging.INFO)
    response = alice.get(f"/faxes/{ident}")
    assert response.status_code == 500 and "Something went wrong" in response.text
    assert "Jane" not in response.text and "Traceback" not in response.text
    assert "ValueError" in caplog.text and "Jane" not in caplog.text
    assert alice.get("/no/such/page").status_code == 404
    assert alice.get(f"/faxes/{10**30}").status_code == 404


# --- documents ----------------------------------------------------------------------------


def fax_tiff(pages: int) -> bytes:
    frames = [Image.new("1", (1728, 1143), 1) for _ in range(pages)]  # 204 x 98 dpi
    out = io.BytesIO()
    frames[0].save(out, "TIFF", compression="group4", save_all=True,
                   append_images=frames[1:], dpi=(204, 98))
    return out.getvalue()


def test_pages_are_served_as_png_images_only(console: Console) -> None:
    ident = console.quarantine("d", documents=[("fax.tif", "tif", fax_tiff(2)),
                                               ("fax.pdf", "pdf", one_page_pdf("hello")),
                                               ("bad.pdf", "pdf", b"%PDF-1.4 broken")])
    alice = signed_in(console)
    page = alice.get(f"/faxes/{ident}").text
    assert page.count("/thumb.png") == 3  # two TIFF pages, one PDF page
    assert "This document cannot be shown: not a readable PDF" in page
    for doc, number in ((1, 1), (1, 2), (2, 1)):
        for size, width in (("thumb", 220), ("page", 1100)):
            image = alice.get(f"/faxes/{ident}/documents/{doc}/pages/{number}/{size}.png")
            assert image.headers["content-type"] == "image/png"
            assert "no-store" in image.headers["cache-control"]
            with Image.open(io.BytesIO(image.content)) as png:
                assert png.format == "PNG" and png.width == width
                if doc == 1:  # 204 x 98 dpi: drawn at the page's real shape (A4-ish)
                    assert 1.3 < png.height / png.width < 1.5
    missing = alice.get(f"/faxes/{ident}/documents/3/pages/1/thumb.png")
    assert missing.headers["content-type"] == "image/png"  # a placeholder saying why
    assert alice.get(f"/faxes/{ident}/documents/9/download").status_code == 404
    tiff = alice.get(f"/faxes/{ident}/documents/1/download")
    assert tiff.headers["content-type"] == "image/tiff"
    assert tiff.headers["content-disposition"].startswith("attachment;")
    assert console.client().get(f"/faxes/{ident}/documents/1/download").status_code == 303


# --- the trusted reverse-proxy header -----------------------------------------------------


def test_the_trusted_header_counts_only_from_the_listed_proxies(console: Console) -> None:
    loaded = console.app.stash[SETTINGS]

    def configure(proxies: list[str], role: str | None = None) -> None:
        import ipaddress

        console.app.stash[SETTINGS] = Loaded(settings.Settings(**{
            **_fields(loaded.settings), "trusted_header": "X-Forwarded-User",
            "trusted_proxies": tuple(ipaddress.ip_network(p) for p in proxies),
            "trusted_role": role}), time.time())

    ident = console.quarantine("h")
    configure(["10.1.2.3"])  # the proxy is elsewhere: this request is not from it
    forged = console.client().get("/", headers={"X-Forwarded-User": "alice"})
    assert forged.headers["location"] == "/login"

    configure(["127.0.0.1"])
    via_proxy = console.client()
    page = via_proxy.get(f"/faxes/{ident}", headers={"X-Forwarded-User": "alice"})
    assert page.status_code == 200 and "signed in by the proxy" in page.text
    assert "Release</button>" in page.text  # alice's role from the users table
    done = via_proxy.post(f"/quarantine/{ident}/dismiss", headers={
        "X-Forwarded-User": "alice"}, data={"csrf": csrf(page.text), "note": "via proxy"})
    assert done.status_code == 303
    assert console.app.journal.records.quarantine_item(ident).resolved_by == "alice"

    stranger = console.client().get("/", headers={"X-Forwarded-User": "carol"})
    assert stranger.headers["location"] == "/login"  # not a user, no trusted_role
    configure(["127.0.0.1"], role="viewer")
    carol = console.client().get("/", headers={"X-Forwarded-User": "carol"})
    assert carol.status_code == 200 and "carol <span class=\"role\">(viewer)" in carol.text


def test_a_path_in_base_url_serves_the_console_under_it(tmp_path: Path) -> None:
    config = CONFIG.replace("session_minutes = 30",
                            'session_minutes = 30\nbase_url = "https://example.org/fax"')
    with running(tmp_path, config) as console:
        client = console.client()
        assert client.get("/fax/").headers["location"] == "/fax/login"
        login = client.get("/fax/login")
        assert "Path=/fax" in login.headers["set-cookie"] and "Secure" in \
            login.headers["set-cookie"]
        assert 'href="/fax/static/console.css"' in login.text
        assert client.get("/fax/static/console.css").status_code == 200
        assert client.get("/login").status_code == 404
