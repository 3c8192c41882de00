"""The web console: server-rendered pages over the journal's records (Starlette, run by
uvicorn in serve.py). Needs the ``console`` extra.

Pages: overview, fax list (filters and search), fax detail (timeline, routes, reasons, page
images, text, why the rules matched), the quarantine queue with its actions, sign-in.
Every page needs a signed-in user; every state-changing request is a POST carrying the
session's CSRF token, checked against the user's role, and the actions record the user's
name in the fax's timeline (actions.py). See docs/console.md for the security model.

Personal data stays out of URLs: faxes are addressed by the record's opaque number; a
search by number, text or reason is POSTed and kept on the server under a random token, so
the address bar, the browser history and any access log see only that token.
"""

from __future__ import annotations

import logging
import re
import secrets
import threading
import time
import traceback
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
from jinja2 import Environment, FileSystemLoader, StrictUndefined
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import FormData
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import HTMLResponse, PlainTextResponse, RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from faxflow import __version__
from faxflow.app import App
from faxflow.paths import safe_extension
from faxflow.records import STATUSES, Cursor, FaxDetail, FaxFilter, RecordStore

from . import SETTINGS, actions, chart
from .auth import COOKIE, Limiter, Session, Sessions, current_user, header_user, verify
from .cli import number, when
from .settings import Settings, User
from .thumbs import Renderer, Unreadable, kind_of, placeholder

log = logging.getLogger("faxflow.console")
HERE = Path(__file__).parent
PAGE = 50
MAX_BODY = 64 * 1024
PERIODS = {"today": "today", "24h": "last 24 hours", "7d": "last 7 days",
           "30d": "last 30 days", "all": "any time"}
QUEUE_STATES = ("open", "released", "routed", "dismissed")
NAME = re.compile(r"^[\w.:-]{1,64}$")  # labels, rules, destination types in a query string
SAFE_PATH = re.compile(r"^[A-Za-z0-9/._-]*$")
LOGIN_FAILED = "The user name or password is wrong."
LOGIN_LIMITED = ("Too many failed sign-ins from here or for this user name. Wait 15 minutes, "
                 "then try again.")

CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; "
       "form-action 'self'; frame-ancestors 'none'; base-uri 'none'")
HEADERS = [
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cross-origin-opener-policy", b"same-origin"),
    (b"cross-origin-resource-policy", b"same-origin"),
    (b"permissions-policy", b"camera=(), microphone=(), geolocation=(), payment=()"),
]


class Refused(Exception):
    """A request we answer with an error page (status and a message for people)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass(frozen=True, slots=True)
class Who:
    session: Session
    user: User | None
    new_cookie: bool  # the session was made for this request: send its cookie

    @property
    def operator(self) -> bool:
        return self.user is not None and self.user.role == "operator"


class Store:
    """Small per-session things kept on the server, bounded: searches (by token) and the
    message shown after an action. Lost on restart; a search then asks to search again."""

    def __init__(self, limit: int = 2000) -> None:
        self.limit = limit
        self._searches: OrderedDict[str, tuple[str, FaxFilter, dict[str, str]]] = OrderedDict()
        self._flashes: OrderedDict[str, list[tuple[str, str]]] = OrderedDict()
        self._lock = threading.Lock()

    def save_search(self, sid: str, flt: FaxFilter, form: dict[str, str]) -> str:
        token = secrets.token_urlsafe(12)
        with self._lock:
            self._searches[token] = (sid, flt, form)
            while len(self._searches) > self.limit:
                self._searches.popitem(last=False)
        return token

    def search(self, sid: str, token: str | None) -> tuple[FaxFilter, dict[str, str]] | None:
        with self._lock:
            found = self._searches.get(token or "")
        if found is None or not secrets.compare_digest(found[0], sid):
            return None
        return found[1], found[2]

    def flash(self, sid: str, level: str, message: str) -> None:
        with self._lock:
            self._flashes.setdefault(sid, []).append((level, message))
            while len(self._flashes) > self.limit:
                self._flashes.popitem(last=False)

    def flashes(self, sid: str) -> list[tuple[str, str]]:
        with self._lock:
            return self._flashes.pop(sid, [])


class Console:
    """The console's state and its request handlers, over one configured App."""

    def __init__(self, app: App, clock: Callable[[], float] = time.time) -> None:
        self.app = app
        self.clock = clock
        self.sessions = Sessions(clock)
        self.by_user = Limiter(5, 900)
        self.by_address = Limiter(20, 900)
        self.store = Store()
        self.renderer = Renderer()
        self.env = Environment(loader=FileSystemLoader(HERE / "templates"), autoescape=True,
                               undefined=StrictUndefined, trim_blocks=True,
                               lstrip_blocks=True)
        self.env.filters.update(stamp=_stamp, ago=self.ago, clock=_clock, count=_count)

    # --- where things are -------------------------------------------------------------

    @property
    def settings(self) -> Settings:
        return self.app.stash[SETTINGS].settings

    @property
    def records(self) -> RecordStore:
        return actions.records(self.app)

    def url(self, path: str) -> str:
        return self.settings.prefix + path

    def ago(self, epoch: float | None) -> str:
        if not epoch:
            return "never"
        seconds = max(0, int(self.clock() - epoch))
        for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
            if seconds >= size:
                return f"{seconds // size} {unit} ago"
        return f"{seconds} s ago"

    # --- who is asking ----------------------------------------------------------------

    @staticmethod
    def peer(request: Request) -> str | None:
        return request.client.host if request.client else None

    def client_address(self, request: Request) -> str:
        """The address to rate-limit: the peer, or what a trusted proxy says it forwarded
        for (the last entry of X-Forwarded-For, the one the proxy itself added)."""
        peer = self.peer(request) or "?"
        forwarded = request.headers.get("x-forwarded-for")
        if forwarded and self.settings.trusts(peer):
            return forwarded.split(",")[-1].strip()[:64] or peer
        return peer

    def who(self, request: Request) -> Who:
        settings = self.settings
        session = self.sessions.decode(settings, request.cookies.get(COOKIE))
        if settings.trusted_header:
            named = header_user(settings, self.peer(request),
                                request.headers.get(settings.trusted_header))
            if named is not None:
                if session is None or session.via != "header" or session.user != named.name:
                    return Who(Session.new(named, "header"), named, True)
                return Who(session, named, False)
        user = current_user(settings, session)
        if session is None:
            return Who(Session.new(), None, True)
        if user is None and session.user is not None:  # expired user, changed password
            return Who(Session.new(), None, True)
        return Who(session, user, False)

    def respond(self, who: Who, response: Response, anonymous: bool = False) -> Response:
        """`response` with the session's cookie if the session is new: a user's (the
        trusted header), or, with `anonymous`, one for the sign-in form's CSRF token. No
        other answer sets a cookie, so a request from another site cannot replace the
        session of someone signed in."""
        if who.new_cookie and (who.user is not None or anonymous):
            self.set_cookie(response, who.session)
        return response

    def set_cookie(self, response: Response, session: Session) -> None:
        settings = self.settings
        response.set_cookie(COOKIE, self.sessions.encode(settings, session),
                            max_age=settings.session_minutes * 60,
                            path=settings.prefix or "/", secure=settings.secure,
                            httponly=True, samesite="strict")

    async def form(self, request: Request, who: Who) -> FormData:
        """The POSTed form, once its CSRF token is the session's (else 403)."""
        form = await request.form(max_files=0, max_fields=50)  # bodies: at most MAX_BODY
        token = form.get("csrf")
        origin = request.headers.get("origin")
        if origin and origin != "null" and origin not in self.origins(request):
            log.warning("refused %s %s: from another site", request.method, _path(request))
            raise Refused(403, "This form did not come from the console.")
        if not isinstance(token, str) or who.new_cookie or not secrets.compare_digest(
                token, who.session.csrf):
            log.warning("refused %s %s: missing or wrong CSRF token", request.method,
                        _path(request))
            raise Refused(403, "This form has expired or did not come from this page. "
                               "Go back, reload the page and try again.")
        return form

    def origins(self, request: Request) -> set[str]:
        own = {f"{request.url.scheme}://{request.headers.get('host', '')}"}
        if self.settings.base_url:
            from urllib.parse import urlsplit

            parts = urlsplit(self.settings.base_url)
            own.add(f"{parts.scheme}://{parts.netloc}")
        return own

    # --- rendering --------------------------------------------------------------------

    def page(self, request: Request, who: Who, template: str, status: int = 200,
             **context: Any) -> Response:
        loaded = self.app.stash[SETTINGS]
        html = self.env.get_template(template).render(
            url=self.url, request_path=request.url.path, user=who.user,
            operator=who.operator, csrf=who.session.csrf, via=who.session.via,
            flashes=self.store.flashes(who.session.sid) if who.user else [],
            now=self.clock(), loaded_at=loaded.at, config_name=self.app.config.path.name
            if self.app.config.path else "", version=__version__, **context)
        return self.respond(who, HTMLResponse(html, status), template == "login.html")

    def error(self, request: Request, status: int, message: str) -> Response:
        try:
            who = self.who(request)
        except Exception:  # the error page must not fail on a broken session
            who = Who(Session.new(), None, True)
        return self.page(request, who, "error.html", status, title="Error", code=status,
                         message=message)

    def failed(self, request: Request) -> Response:
        return self.error(request, 500, "Something went wrong on our side. It was logged "
                                        "(without details). Try again, or ask your "
                                        "administrator.")

    # --- sign-in ----------------------------------------------------------------------

    async def login_form(self, request: Request) -> Response:
        who = self.who(request)
        if who.user is not None:
            return RedirectResponse(self.url("/"), 303)
        return self.page(request, who, "login.html", title="Sign in", error=None, name="")

    async def login(self, request: Request) -> Response:
        who = self.who(request)
        form = await self.form(request, who)
        name = str(form.get("username", ""))[:200]
        password = str(form.get("password", ""))[:1000]
        address = self.client_address(request)
        if self.by_user.blocked(name) or self.by_address.blocked(address):
            log.warning("sign-in refused: too many failures (from %s)", address)
            return self.page(request, who, "login.html", 429, title="Sign in",
                             error=LOGIN_LIMITED, name=name)
        user = self.settings.users.get(name)
        if not await run_in_threadpool(verify, user, password):
            self.by_user.failed(name)
            self.by_address.failed(address)
            log.warning("sign-in failed (from %s)", address)
            return self.page(request, who, "login.html", 200, title="Sign in",
                             error=LOGIN_FAILED, name=name)
        assert user is not None
        self.by_user.clear(name)
        session = Session.new(user)  # a new id and token: nothing carries over
        log.info("%s signed in (from %s)", user.name, address)
        response = RedirectResponse(self.url("/"), 303)
        self.set_cookie(response, session)
        return response

    async def logout(self, request: Request) -> Response:
        who = self.who(request)
        await self.form(request, who)
        self.sessions.revoke(self.settings, who.session)
        if who.user is not None:
            log.info("%s signed out", who.user.name)
        response = RedirectResponse(self.url("/login"), 303)
        response.delete_cookie(COOKIE, path=self.settings.prefix or "/",
                               secure=self.settings.secure, httponly=True, samesite="strict")
        return response

    # --- guarded pages ----------------------------------------------------------------

    def guard(self, request: Request, operator: bool = False) -> Who:
        who = self.who(request)
        if who.user is None:
            if request.method in ("GET", "HEAD"):
                raise Redirect(self.url("/login"), who)
            raise Refused(403, "Sign in first.")
        if operator and not who.operator:
            log.warning("refused %s %s: %s is a viewer", request.method, _path(request),
                        who.user.name)
            raise Refused(403, "Only operators can do this; you can look, not act.")
        return who

    async def overview(self, request: Request) -> Response:
        who = self.guard(request)
        now = datetime.fromtimestamp(self.clock())
        today = now.replace(hour=0, minute=0, second=0, microsecond=0)
        week = today - timedelta(days=today.weekday())
        data = await run_in_threadpool(self._overview, today.timestamp(), week.timestamp())
        day_ago = self.clock() - 86400
        bars = chart.bars([(t, n) for t, n in data["per_hour"] if t >= day_ago - 3600],
                          self.clock())
        return self.page(request, who, "overview.html", title="Overview", data=data,
                         statuses=STATUSES, chart=bars)

    def _overview(self, today: float, week: float) -> dict[str, Any]:
        data = self.records.overview(self.clock() - 86400 - 3600)  # the chart's 24 hours
        data["week"] = self.records.status_counts(week)
        data["today"] = self.records.status_counts(today)
        return data

    async def faxes(self, request: Request) -> Response:
        who = self.guard(request)
        params = request.query_params
        flt, form, expired = self.list_filter(who, params.get("q"))
        if not params.get("q"):
            flt, form = self.simple_filter(params.get)
        after = Cursor.parse(params.get("after"))
        rows, cursor = await run_in_threadpool(self.records.faxes, flt, after, PAGE)
        return self.page(request, who, "faxes.html", title="Faxes", rows=rows,
                         next=cursor.token() if cursor else None, q=params.get("q") or "",
                         form=form, expired=expired, statuses=STATUSES, periods=PERIODS,
                         first=after is None, simple=self.simple_query(form),
                         store_text=bool(self.app.plugin_options("history").get("store_text")))

    def simple_filter(self, get: Callable[[str], str | None]) -> tuple[FaxFilter, dict[str, str]]:
        """A filter from the query string: only values that name nothing personal."""
        form: dict[str, str] = {}
        status = get("status")
        if status in STATUSES:
            form["status"] = status
        period = get("period")
        if period in PERIODS:
            form["period"] = period
        for key in ("label", "rule", "destination"):
            value = get(key)
            if value and NAME.match(value):
                form[key] = value
        return self.build_filter(form), form

    @staticmethod
    def simple_query(form: dict[str, str]) -> str:
        from urllib.parse import urlencode

        return urlencode({k: v for k, v in form.items()
                          if k in ("status", "period", "label", "rule", "destination")})

    def list_filter(self, who: Who, token: str | None
                    ) -> tuple[FaxFilter, dict[str, str], bool]:
        if not token:
            return FaxFilter(), {}, False
        found = self.store.search(who.session.sid, token)
        if found is None:
            return FaxFilter(), {}, True
        return found[0], found[1], False

    def build_filter(self, form: dict[str, str]) -> FaxFilter:
        """A FaxFilter from form values; Refused(400) with a message for bad input."""
        since = until = None
        period = form.get("period", "")
        now = datetime.fromtimestamp(self.clock())
        if period == "today":
            since = now.replace(hour=0, minute=0, second=0, microsecond=0).timestamp()
        elif period in ("24h", "7d", "30d"):
            since = (now - {"24h": timedelta(hours=24), "7d": timedelta(days=7),
                            "30d": timedelta(days=30)}[period]).timestamp()
        try:
            if form.get("since"):
                since = when(form["since"])
            if form.get("until"):
                until = when(form["until"])
        except click.BadParameter as exc:
            raise Refused(400, f"Time: {exc.message}") from None
        status = form.get("status") or None
        if status is not None and status not in STATUSES + QUEUE_STATES:
            raise Refused(400, "Unknown status.")
        return FaxFilter(
            status=status, since=since, until=until,
            sender=number(self.app, form.get("sender")) or None,
            receiver=number(self.app, form.get("receiver")) or None,
            label=form.get("label") or None, rule=form.get("rule") or None,
            destination=form.get("destination") or None, text=form.get("text") or None,
            reason=form.get("reason") or None)

    async def search(self, request: Request) -> Response:
        """POSTed filters (they may name numbers or text): kept here, the URL gets a token."""
        who = self.guard(request)
        form = await self.form(request, who)
        queue = request.url.path.endswith("/quarantine/search")
        keys = ("state", "reason", "period", "since", "until") if queue else (
            "status", "period", "since", "until", "sender", "receiver", "label", "rule",
            "destination", "text", "reason")
        values = {k: str(form.get(k, "")).strip()[:200] for k in keys}
        values = {k: v for k, v in values.items() if v}
        if queue:
            state = values.pop("state", "open")
            flt = replace(self.build_filter(values),
                          status=state if state in QUEUE_STATES else "open")
            values["state"] = flt.status or "open"
        else:
            flt = self.build_filter(values)
        token = self.store.save_search(who.session.sid, flt, values)
        target = "/quarantine" if queue else "/faxes"
        return self.respond(who, RedirectResponse(self.url(f"{target}?q={token}"), 303))

    async def fax(self, request: Request) -> Response:
        who = self.guard(request)
        ident = number_in(request, "ident")
        detail = await run_in_threadpool(self.records.fax, ident)
        if detail is None:
            raise Refused(404, "There is no such fax (it may have been pruned).")
        documents = await run_in_threadpool(self.documents, detail)
        return self.page(request, who, "fax.html", title=f"Fax #{ident}", d=detail,
                         documents=documents, explain=explain_text(detail),
                         targets=self.app.route_targets() if who.operator else [])

    def documents(self, detail: FaxDetail) -> list[dict[str, Any]]:
        if detail.quarantine is None:
            return []
        out = []
        for doc, data in self.records.quarantine_documents(detail.row.id):
            entry: dict[str, Any] = {"doc": doc, "pages": 0, "problem": None}
            try:
                entry["pages"] = self.renderer.pages(doc.sha256, doc.extension, data)
            except Unreadable as exc:
                entry["problem"] = str(exc)
            out.append(entry)
        return out

    async def image(self, request: Request) -> Response:
        self.guard(request)
        ident = number_in(request, "ident")
        index = number_in(request, "doc")
        page = number_in(request, "page")
        size = "thumb" if request.url.path.endswith("/thumb.png") else "page"
        png = await run_in_threadpool(self._image, ident, index, page, size)
        return Response(png, media_type="image/png",
                        headers={"cache-control": "private, no-store"})

    def _image(self, ident: int, index: int, page: int, size: str) -> bytes:
        item = self.records.quarantine_item(ident)  # without the documents' content
        known = next((d for d in item.documents if d.index == index), None) if item else None
        cached = self.renderer.cached(known.sha256, page, size) if known else None
        if cached is not None:
            return cached
        doc = self._document(ident, index)
        try:
            return self.renderer.png(doc[0], doc[1], doc[2], page, size)
        except Unreadable as exc:
            from .thumbs import SIZES

            return placeholder(SIZES[size], f"Page {page}: {exc}. Download the document "
                                            "to look at it.")

    def _document(self, ident: int, index: int) -> tuple[str, str, bytes]:
        for doc, data in self.records.quarantine_documents(ident):
            if doc.index == index:
                return doc.sha256, doc.extension, data
        raise Refused(404, "There is no such document.")

    async def download(self, request: Request) -> Response:
        self.guard(request)
        ident = number_in(request, "ident")
        index = number_in(request, "doc")
        _, extension, data = await run_in_threadpool(self._document, ident, index)
        kind = kind_of(extension, data)
        ext = {"pdf": "pdf", "tiff": "tif"}.get(kind.name, safe_extension(extension))
        return Response(data, media_type=kind.content_type, headers={
            "content-disposition": f'attachment; filename="fax-{ident}-{index}.{ext}"',
            "cache-control": "private, no-store",
            "content-security-policy": "default-src 'none'; sandbox"})

    async def queue(self, request: Request) -> Response:
        who = self.guard(request)
        params = request.query_params
        flt, form, expired = self.list_filter(who, params.get("q"))
        if not params.get("q"):
            state = params.get("state") if params.get("state") in QUEUE_STATES else "open"
            flt, form = FaxFilter(status=state), {"state": str(state)}
        after = Cursor.parse(params.get("after"))
        found, cursor = await run_in_threadpool(self.records.quarantine_list, flt, after,
                                                PAGE)
        reasons = await run_in_threadpool(self.records.quarantine_reasons, 8) \
            if flt.status == "open" and after is None else []
        return self.page(request, who, "quarantine.html", title="Quarantine", items=found,
                         next=cursor.token() if cursor else None, q=params.get("q") or "",
                         form=form, expired=expired, state=flt.status or "open",
                         states=QUEUE_STATES, reasons=reasons, periods=PERIODS,
                         filtered=bool(params.get("q")),
                         first=after is None,
                         targets=self.app.route_targets() if who.operator else [])

    # --- actions ----------------------------------------------------------------------

    async def act(self, request: Request) -> Response:
        who = self.guard(request, operator=True)
        form = await self.form(request, who)
        assert who.user is not None
        ident = number_in(request, "ident")
        action = request.path_params["action"]
        if action not in ("release", "route", "dismiss"):
            raise Refused(404, "There is no such action.")
        note = str(form.get("note", "")).strip()[:2000]
        target = str(form.get("target", "")).strip()
        name = who.user.name

        def run() -> actions.Result:
            if action == "release":
                return actions.release(self.app, ident, name, note)
            if action == "route":
                return actions.route(self.app, ident, target, name, note)
            return actions.dismiss(self.app, ident, name, note)

        try:
            result = await run_in_threadpool(run)
            self.store.flash(who.session.sid, "done" if result.done else "problem",
                             result.message)
        except actions.ActionError as exc:
            self.store.flash(who.session.sid, "problem", str(exc))
        log.info("%s: %s #%d", name, action, ident)
        back = "/quarantine" if form.get("back") == "queue" else f"/faxes/{ident}"
        return RedirectResponse(self.url(back), 303)

    async def bulk(self, request: Request) -> Response:
        who = self.guard(request, operator=True)
        form = await self.form(request, who)
        assert who.user is not None
        action = str(form.get("action", ""))
        note = str(form.get("note", "")).strip()[:2000]
        target = str(form.get("target", "")).strip() or None
        token = str(form.get("q", ""))
        back = self.url(f"/quarantine?q={token}" if token else "/quarantine")
        if form.get("confirm") != "yes":
            self.store.flash(who.session.sid, "problem", "Nothing was done: tick the box to "
                             "confirm that the action is for every matching item.")
            return RedirectResponse(back, 303)
        if action not in ("release", "route", "dismiss") or (action == "route" and
                                                              not target):
            raise Refused(400, "Choose release, route (with a target) or dismiss.")
        flt = FaxFilter(status="open")
        if token:
            found = self.store.search(who.session.sid, token)
            if found is None:
                raise Refused(400, "This search has expired; search again.")
            flt = replace(found[0], status="open")
        results = await run_in_threadpool(actions.bulk, self.app, flt, action,
                                          who.user.name, note, target)
        log.info("%s: %s on %d quarantined faxes", who.user.name, action, len(results))
        return self.page(request, who, "bulk.html", title="Bulk action", results=results,
                         action=action, done=sum(r.done for r in results), back=back)

    async def healthz(self, request: Request) -> Response:
        return PlainTextResponse("ok\n")


class Redirect(Exception):
    def __init__(self, location: str, who: Who) -> None:
        super().__init__(location)
        self.location = location
        self.who = who


def number_in(request: Request, name: str) -> int:
    """A number from the path (record, document, page); 404 beyond what a database holds."""
    value = int(request.path_params[name])
    if value > 2**63 - 1:
        raise Refused(404, "There is no such page.")
    return value


def explain_text(detail: FaxDetail) -> str | None:
    """Why the rules routed the fax, as `faxflow explain` prints it."""
    data = detail.explain
    if not isinstance(data, dict) or not isinstance(data.get("rules"), dict):
        return None
    try:
        from faxflow_rules.explain import format_text

        text: str = format_text(data["rules"])
        return text.replace("Routes (nothing was delivered):", "Routes:")
    except Exception:  # an older record's shape: show it as it is
        import json

        return json.dumps(data["rules"], indent=2, ensure_ascii=False, default=str)


def _stamp(epoch: float | None, seconds: bool = False) -> str:
    if not epoch:
        return "-"
    return datetime.fromtimestamp(epoch).strftime("%Y-%m-%d %H:%M" + (":%S" if seconds else ""))


def _clock(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%H:%M:%S") if epoch else "-"


def _count(value: int) -> str:
    return f"{value:,}"


def _path(request: Request) -> str:
    path = request.url.path
    return path if SAFE_PATH.match(path) else "(path withheld)"


# --- the ASGI application ------------------------------------------------------------------


class Frame:
    """Around every request: security headers, a size limit on bodies, an access log line
    without query strings, and errors answered by a page without details (the log gets
    the exception's type and where it happened, not its message: it may hold fax data)."""

    def __init__(self, app: ASGIApp, console: Console) -> None:
        self.app = app
        self.console = console

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.monotonic()
        status = [0]
        path = scope.get("path", "")
        static = path.startswith(self.console.settings.prefix + "/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
                headers = list(message.get("headers", []))
                names = {k.lower() for k, _ in headers}
                headers += [(k, v) for k, v in HEADERS if k not in names]
                if b"cache-control" not in names:
                    headers.append((b"cache-control", b"public, max-age=3600" if static
                                    else b"no-store"))
                if self.console.settings.secure:
                    headers.append((b"strict-transport-security", b"max-age=31536000"))
                message = {**message, "headers": headers}
            await send(message)

        length = dict(scope.get("headers", [])).get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > MAX_BODY):
            await PlainTextResponse("Too large.\n", 413)(scope, receive, send_with_headers)
            return
        received = [0]

        async def limited_receive() -> Message:
            message = await receive()
            received[0] += len(message.get("body", b""))
            if received[0] > MAX_BODY:
                raise Refused(413, "Too large.")
            return message

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except Exception as exc:  # never re-raised: the server would log its message
            log_error(scope, exc)
            if not status[0]:
                await self.console.failed(Request(scope))(scope, receive, send_with_headers)
        finally:  # health checks and static files at debug: they would drown the rest
            quiet = static or path == self.console.settings.prefix + "/healthz"
            log.log(logging.DEBUG if quiet else logging.INFO, "%s %s %d %.0f ms",
                    scope.get("method"), path if SAFE_PATH.match(path) else "(path withheld)",
                    status[0], (time.monotonic() - started) * 1000)


def log_error(scope: Scope, exc: BaseException) -> None:
    """An internal error, logged by type and place only: its message and the traceback's
    values may hold fax data (--log-level debug shows everything)."""
    where = traceback.extract_tb(exc.__traceback__)[-1:]
    at = f"{Path(where[0].filename).name}:{where[0].lineno} in {where[0].name}" \
        if where else "?"
    path = str(scope.get("path", ""))
    log.error("internal error on %s %s: %s at %s (details withheld: they may hold fax data)",
              scope.get("method"), path if SAFE_PATH.match(path) else "(path withheld)",
              type(exc).__name__, at)
    log.debug("internal error", exc_info=exc)


def build(app: App, clock: Callable[[], float] = time.time) -> tuple[ASGIApp, Console]:
    """The ASGI app for a configured App with its journal open."""
    console = Console(app, clock)

    def handle(method: Callable[[Request], Awaitable[Response]]
               ) -> Callable[[Request], Awaitable[Response]]:
        async def endpoint(request: Request) -> Response:
            try:
                return await method(request)
            except Redirect as go:
                return console.respond(go.who, RedirectResponse(go.location, 303))
            except Refused as refused:
                return console.error(request, refused.status, refused.message)
            except Exception as exc:  # here, before Starlette would log it with its message
                log_error(request.scope, exc)
                return console.failed(request)
        return endpoint

    c = console
    routes = [
        Route("/", handle(c.overview)),
        Route("/login", handle(c.login_form)),
        Route("/login", handle(c.login), methods=["POST"]),
        Route("/logout", handle(c.logout), methods=["POST"]),
        Route("/faxes", handle(c.faxes)),
        Route("/faxes/search", handle(c.search), methods=["POST"]),
        Route("/faxes/{ident:int}", handle(c.fax)),
        Route("/faxes/{ident:int}/documents/{doc:int}/pages/{page:int}/thumb.png",
              handle(c.image)),
        Route("/faxes/{ident:int}/documents/{doc:int}/pages/{page:int}/page.png",
              handle(c.image)),
        Route("/faxes/{ident:int}/documents/{doc:int}/download", handle(c.download)),
        Route("/quarantine", handle(c.queue)),
        Route("/quarantine/search", handle(c.search), methods=["POST"]),
        Route("/quarantine/bulk", handle(c.bulk), methods=["POST"]),
        Route("/quarantine/{ident:int}/{action:str}", handle(c.act), methods=["POST"]),
        Route("/healthz", handle(c.healthz)),
        Mount("/static", StaticFiles(directory=HERE / "static")),
    ]
    prefix = app.stash[SETTINGS].settings.prefix
    if prefix:
        routes = [Mount(prefix, routes=routes)]

    async def http_error(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        message = {404: "There is no such page.", 405: "That does not work here."}.get(
            status, "The request was refused.")
        return console.error(request, status, message)

    asgi = Starlette(routes=routes, exception_handlers={HTTPException: http_error})
    return Frame(asgi, console), console
