"""The web console in a real browser: Chromium (Debian's `chromium`, driven by Playwright; no
browser download) against `faxflow console` running as its own process, on faxes a real
worker quarantined.

An operator signs in (a wrong password first), sees the quarantined fax with its page image
and its reason, fixes the configuration (the console reloads it), releases the fax and sees
it delivered exactly once with the timeline saying who released it. A viewer sees no
actions, and forged POSTs (without a token, with a viewer's token, from another site) are
refused and change nothing. XSS payloads in a CSID and in a document's text show as text.

Screenshots of the main pages are saved under the test's tmp dir; with
FAXFLOW_DOCS_SCREENSHOTS=1 small copies replace docs/img/console-*.png.
"""

from __future__ import annotations

import contextlib
import http.server
import os
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from waiting import wait_for

from faxflow.app import load_app
from faxflow.runner import start_worker_thread
from faxflow.simulator import Simulator, SimulatorServer
from faxflow.simulator.minipdf import one_page_pdf

CHROMIUM = os.environ.get("FAXFLOW_CHROMIUM", "/usr/bin/chromium")
ROOT = Path(__file__).resolve().parent.parent
OPERATOR, VIEWER, PASSWORD = "alice", "victor", "a long test password"
CSID_XSS = '<img src=x onerror="alert(\'csid\')">'
TEXT_XSS = '<script>alert("text")</script>'
PDFTEXT_PLUGIN = '''\
"""Text extraction for the test: poppler's pdftotext (the documents hold real text)."""
import subprocess

from faxflow.hookspecs import hookimpl
from faxflow.types import PageText


@hookimpl
def faxflow_extract_text(fax, document):
    out = subprocess.run(["pdftotext", "-layout", str(document.path), "-"],
                         capture_output=True, timeout=30)
    if out.returncode != 0:
        return None
    pages = out.stdout.decode("utf-8", "replace").split("\\f")
    return [PageText(i, text) for i, text in enumerate(pages[:-1] or pages, start=1)]
'''
CONFIG = """\
[retarus]
base_url = "{api_url}"
username = "99999"
password = "secret"
topics = ["t"]

[worker]
poll_interval_max = 0.2
max_attempts = 1
quarantine_dir = ""

[journal]
path = "journal.sqlite"

[plugins.history]
store_text = true

[plugins.folder]
base = "{folder}"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"

[plugins.console]
listen = "127.0.0.1:{port}"
secret = "${{CONSOLE_SECRET}}"
[plugins.console.users.{operator}]
password_hash = "{hash}"
role = "operator"
[plugins.console.users.{viewer}]
password_hash = "{hash}"
role = "viewer"
"""

pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists() and not os.environ.get("CI"),
                                reason=f"no {CHROMIUM}: apt-get install chromium")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])



@dataclass
class Site:
    base: str
    config: Path
    out: Path
    ids: dict[str, int]  # record id by what the fax is
    log: Path


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    """Two faxes quarantined by a real worker because its folder setting names a folder
    that does not exist; then `faxflow console` on a free loopback port."""
    from argon2 import PasswordHasher

    tmp = tmp_path_factory.mktemp("console")
    plugins = tmp / "plugins"
    plugins.mkdir()
    (plugins / "pdftext.py").write_text(PDFTEXT_PLUGIN)
    (tmp / "out").mkdir()
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "rules,folder,history,console",
           "FAXFLOW_PLUGINS_DIR": str(plugins), "CONSOLE_SECRET": "s" * 40}
    port = free_port()
    sim = Simulator(users={"99999": "secret"}, topics={"t": "99999"}, seed=3)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        sim.add_fax("t", documents=[{"extension": "pdf", "content": one_page_pdf(
            "Referral for patient PID-4711")}], senderIsdn="+498912345", senderFaxId="WARD 7")
        sim.add_fax("t", documents=[{"extension": "pdf", "content": one_page_pdf(
            f"Hostile {TEXT_XSS} text")}], senderIsdn="+498954321", senderFaxId=CSID_XSS)
        config = tmp / "faxflow.toml"
        config.write_text(CONFIG.format(
            api_url=server.api_url, folder="missing-folder", port=port, operator=OPERATOR,
            viewer=VIEWER, hash=PasswordHasher().hash(PASSWORD)))
        app = load_app(config, plugins_dir=plugins, env=env, load=["rules", "folder",
                                                                    "history", "console"])
        thread, worker = start_worker_thread(app, wait=20)
        assert worker is not None
        wait_for(lambda: sim.topic_state("t")["acknowledged"] == 2, 60, "two quarantines")
        worker.stop()
        thread.join(30)
    from faxflow.journal import open_journal

    journal = open_journal("sqlite", tmp / "journal.sqlite")
    try:
        items, _ = journal.records.quarantine_list()
        ids = {("xss" if "onerror" in (row.csid or "") else "plain"): row.id
               for row, _ in items}
    finally:
        journal.close()
    assert len(ids) == 2
    log = tmp / "console.log"
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "faxflow", "console", "-c",
                                    str(config)], env=env, stdout=out,
                                   stderr=subprocess.STDOUT, cwd=tmp)
    base = f"http://127.0.0.1:{port}"
    try:
        wait_for(lambda: _up(base) or process.poll() is not None, 30, "the console")
        assert process.poll() is None, log.read_text()
        yield Site(base, config, tmp / "out", ids, log)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
    text = log.read_text()
    assert "Traceback" not in text, text
    # Nothing personal in the console's log: no number, CSID or text of a fax.
    for secret in ("498912345", "WARD 7", "onerror", "PID-4711", "Referral", PASSWORD):
        assert secret not in text, f"{secret!r} in the console's log"


def _up(base: str) -> bool:
    try:
        return httpx.get(f"{base}/healthz", timeout=1).status_code == 200
    except httpx.HTTPError:
        return False


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    # launch() gives the browser a fresh, temporary profile (user-data-dir) of its own.
    with sync_playwright() as p:
        chromium = p.chromium.launch(
            executable_path=CHROMIUM, headless=True,
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync", "--no-first-run",
                  "--disable-default-apps"])
        try:
            yield chromium
        finally:
            chromium.close()


DIALOGS: dict[Page, list[str]] = {}


def new_page(browser: Browser, site: Site) -> Page:
    context = browser.new_context(base_url=site.base,
                                  viewport={"width": 1280, "height": 800})
    page = context.new_page()
    DIALOGS[page] = []  # every alert() that fires would land here
    page.on("dialog", lambda dialog: (DIALOGS[page].append(dialog.message), dialog.dismiss()))
    return page


def sign_in(page: Page, user: str, password: str = PASSWORD) -> None:
    page.goto("/login")
    page.get_by_label("User name").fill(user)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_load_state()


@contextlib.contextmanager
def attacker(html: str) -> Iterator[str]:
    """Another site serving `html`; yields its address."""
    body = html.encode()

    class Page(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Page)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://localhost:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def still_open(page: Page, site: Site, which: str) -> bool:
    page.goto(f"/faxes/{site.ids[which]}")
    return "Quarantine: open" in page.locator("#quarantine").inner_text()


def unlabelled(page: Page) -> list[str]:
    """Form controls and images a screen reader could not name."""
    return list(page.evaluate("""() => [
        ...Array.from(document.querySelectorAll(
            'input:not([type=hidden]), select, textarea, button')).filter(e =>
            !(e.labels && e.labels.length) && !e.getAttribute('aria-label')
            && !(e.tagName === 'BUTTON' && e.textContent.trim())),
        ...Array.from(document.querySelectorAll('img')).filter(e => !e.alt),
    ].map(e => e.outerHTML)"""))


def screenshot(page: Page, site: Site, name: str) -> None:
    path = site.config.parent / "screenshots" / f"console-{name}.png"
    path.parent.mkdir(exist_ok=True)
    page.evaluate("window.scrollTo(0, 0)")
    page.screenshot(path=str(path))
    if os.environ.get("FAXFLOW_DOCS_SCREENSHOTS") == "1":
        from PIL import Image

        with Image.open(path) as image:
            small = image.convert("RGB").resize((960, 600), Image.Resampling.LANCZOS)
            small.quantize(colors=64).save(ROOT / "docs" / "img" / path.name, optimize=True)


def test_operator_fixes_the_configuration_and_releases_a_quarantined_fax(
        browser: Browser, site: Site) -> None:
    page = new_page(browser, site)

    # A wrong password and an unknown user get the same answer, naming neither part.
    sign_in(page, OPERATOR, "not the password")
    wrong = page.get_by_role("alert").inner_text()
    sign_in(page, "nobody-here", PASSWORD)
    unknown = page.get_by_role("alert").inner_text()
    assert wrong == unknown == "The user name or password is wrong."
    assert page.url.endswith("/login")

    sign_in(page, OPERATOR)
    assert page.get_by_role("heading", name="Overview").is_visible()
    assert page.get_by_role("link", name="2 open").is_visible()
    screenshot(page, site, "overview")

    page.get_by_role("navigation", name="Main").get_by_role("link", name="Quarantine").click()
    queue = page.get_by_role("table")
    assert queue.get_by_role("row").count() == 3  # the header and two items
    assert "missing-folder does not exist" in queue.inner_text()
    screenshot(page, site, "quarantine")
    assert unlabelled(page) == []

    page.get_by_role("link", name=f"#{site.ids['plain']}").click()
    assert page.get_by_role("heading", name=f"Fax #{site.ids['plain']}").is_visible()
    assert "missing-folder does not exist" in page.locator(".reasons").inner_text()
    thumb = page.get_by_role("img", name="Page 1 of document 1")
    thumb.scroll_into_view_if_needed()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=thumb
                           .element_handle())
    assert thumb.evaluate("img => img.naturalWidth") == 220
    assert "Referral for patient PID-4711" in page.locator("pre.text").text_content()
    assert "Default route: used" in page.locator("pre.explain").inner_text()
    screenshot(page, site, "fax")
    assert unlabelled(page) == []
    page.keyboard.press("Tab")  # the first stop skips the navigation
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"

    # The fix: the folder setting names the folder that exists. The console reloads it.
    loaded = page.locator("footer .config").get_attribute("data-loaded")
    site.config.write_text(site.config.read_text().replace('"missing-folder"', '"out"'))

    def reloaded() -> bool:
        page.reload()
        return page.locator("footer .config").get_attribute("data-loaded") != loaded

    wait_for(reloaded, 20, "the console to reload its configuration")
    assert list(site.out.iterdir()) == []

    release = page.get_by_role("button", name="Release")  # with the keyboard
    release.focus()
    with page.expect_navigation():
        page.keyboard.press("Enter")
    assert "released: delivered to default/0" in page.get_by_role("status").inner_text()
    assert "Quarantine: released" in page.locator("#quarantine").inner_text()
    last = page.locator(".timeline li").last.inner_text()
    assert "released" in last and f"by {OPERATOR}" in last
    assert page.get_by_role("button", name="Release").count() == 0
    assert len(list(site.out.glob("*.pdf"))) == 1

    # Twice is once: the same POST again (a double click, a reload) delivers nothing more.
    token = page.locator("input[name=csrf]").first.get_attribute("value")
    again = page.request.post(f"/quarantine/{site.ids['plain']}/release",
                              form={"csrf": token}, max_redirects=0)
    assert again.status == 303
    page.goto(f"/faxes/{site.ids['plain']}")
    assert f"was released by {OPERATOR} already" in page.get_by_role("alert").inner_text()
    assert len(list(site.out.glob("*.pdf"))) == 1

    page.goto("/quarantine")
    assert f"#{site.ids['plain']}" not in page.get_by_role("table").inner_text()
    assert f"#{site.ids['xss']}" in page.get_by_role("table").inner_text()
    assert DIALOGS[page] == []


def test_xss_payloads_in_a_csid_and_in_the_text_show_as_text(
        browser: Browser, site: Site) -> None:
    page = new_page(browser, site)
    sign_in(page, OPERATOR)
    page.goto(f"/faxes/{site.ids['xss']}")
    assert CSID_XSS in page.locator("dd.csid").text_content()
    assert TEXT_XSS in page.locator("pre.text").text_content()
    assert page.locator("img[src=x]").count() == 0  # the payload made no element
    page.goto("/faxes")
    assert CSID_XSS in page.get_by_role("table").text_content()
    page.goto("/quarantine")
    page.wait_for_load_state("networkidle")
    assert DIALOGS[page] == []


def test_a_viewer_cannot_act_and_forged_posts_change_nothing(
        browser: Browser, site: Site) -> None:
    viewer = new_page(browser, site)
    sign_in(viewer, VIEWER)
    target = site.ids["xss"]
    viewer.goto(f"/faxes/{target}")
    assert viewer.get_by_role("button", name="Release").count() == 0
    assert viewer.get_by_role("button", name="Dismiss").count() == 0
    viewer.goto("/quarantine")
    assert viewer.get_by_role("button", name="Release").count() == 0
    assert viewer.get_by_role("button", name="Apply to all").count() == 0
    token = viewer.locator("input[name=csrf]").first.get_attribute("value")
    for form in ({"csrf": token}, {}):  # the viewer's own token, and none
        refused = viewer.request.post(f"/quarantine/{target}/dismiss",
                                      form={**form, "note": "forged"}, max_redirects=0)
        assert refused.status == 403

    operator = new_page(browser, site)
    sign_in(operator, OPERATOR)
    refused = operator.request.post(f"/quarantine/{target}/dismiss", form={"note": "x"},
                                    max_redirects=0)
    assert refused.status == 403 and "expired or did not come" in refused.text()
    # A page on another site (localhost is another site than 127.0.0.1) submitting a form
    # to the console: the browser does not send the SameSite=Strict session cookie along,
    # so the console sees nobody signed in.
    with attacker(f'<form method="post" action="{site.base}/quarantine/{target}/dismiss">'
                  '<input name="note" value="forged"><button>go</button></form>') as evil:
        operator.goto(evil)
        with operator.expect_navigation():
            operator.get_by_role("button", name="go").click()
    assert "Sign in first" in operator.locator("main").inner_text()
    assert still_open(operator, site, "xss")
    assert still_open(viewer, site, "xss")
    assert len(list(site.out.glob("*.pdf"))) <= 1
    assert DIALOGS[viewer] == [] and DIALOGS[operator] == []
