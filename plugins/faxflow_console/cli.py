"""`faxflow faxes list|show` and `faxflow quarantine list|show|release|route|dismiss`.

Tables fit an 80-column terminal; every value from a fax (numbers, CSID, reasons) is shown
with its control and format characters escaped, so it cannot drive the terminal.
"""

from __future__ import annotations

import getpass
import json
import os
import re
import sys
import textwrap
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import click
import phonenumbers

from faxflow.app import App, load_app
from faxflow.errors import ConfigError, FaxflowError
from faxflow.journal import open_journal
from faxflow.logs import escape_controls
from faxflow.records import Cursor, FaxDetail, FaxFilter, FaxRow, QuarantineItem, RecordStore

from . import actions

config_option = click.option(
    "-c", "--config", "config_path", required=True, envvar="FAXFLOW_CONFIG",
    type=click.Path(path_type=Path, dir_okay=False), help="The TOML configuration file.")
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")


@contextmanager
def opened(config_path: Path) -> Iterator[App]:
    """The configured app with its journal open (read and write, as a worker has it), with
    the same plugins as `faxflow run` (FAXFLOW_LOAD_PLUGINS, FAXFLOW_PLUGINS_DIR)."""
    plugins_dir = os.environ.get("FAXFLOW_PLUGINS_DIR")
    try:
        app = load_app(config_path, plugins_dir=Path(plugins_dir) if plugins_dir else None)
    except ConfigError as exc:
        raise click.ClickException(str(exc)) from None
    config = app.config
    try:
        app.journal = open_journal(config.journal.backend,
                                   config.resolve(config.journal.path), config.journal.url,
                                   config.file_mode)
    except Exception as exc:
        raise click.ClickException(f"cannot open the journal: {exc}") from None
    try:
        yield app
    finally:
        app.shutdown()
        app.journal.close()


def when(text: str | None) -> float | None:
    """A point in time from a person: "2026-12-01", "2026-12-01T10:00", "10:00" (today),
    "90m", "2h" or "3d" (that long ago). None for None."""
    if text is None:
        return None
    text = text.strip()
    relative = re.fullmatch(r"(\d+)\s*([mhd])", text)
    if relative:
        unit = {"m": "minutes", "h": "hours", "d": "days"}[relative.group(2)]
        return (datetime.now() - timedelta(**{unit: int(relative.group(1))})).timestamp()
    if re.fullmatch(r"\d{1,2}:\d{2}", text):
        hour, minute = map(int, text.split(":"))
        return datetime.now().replace(hour=hour, minute=minute, second=0,
                                      microsecond=0).timestamp()
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise click.BadParameter(f"{text!r}: use 2026-12-01, 2026-12-01T10:00, 10:00, 90m, "
                                 "2h or 3d") from None


def number(app: App, text: str | None) -> str | None:
    """A number as typed ("089 123", "+49 89 123") to the E.164 prefix records hold."""
    if not text:
        return None
    country = str(app.plugin_options("rules").get("default_country", "DE")).upper()
    digits = re.sub(r"[^\d+]", "", text)
    try:
        parsed = phonenumbers.parse(digits, country)
        return f"+{parsed.country_code}{parsed.national_number}"
    except phonenumbers.NumberParseException:
        return digits


def show(value: Any, width: int) -> str:
    """One cell: escaped, cut to `width` with an ellipsis."""
    text = escape_controls("" if value is None else str(value))
    return text if len(text) <= width else text[: max(width - 1, 0)] + "…"


def wrapped(label: str, text: str, limit: int = 2000) -> list[str]:
    """`text` escaped and wrapped to 80 columns below `label` (at most `limit` characters)."""
    parts = textwrap.wrap(show(text, limit), 80 - len(label)) or [""]
    return [label + parts[0]] + [" " * len(label) + part for part in parts[1:]]


def stamp(epoch: float | None) -> str:
    return datetime.fromtimestamp(epoch).strftime("%m-%d %H:%M") if epoch else "-"


def row_line(row: FaxRow, last: str) -> str:
    # 7 + 12 + 12 + 16 + 16 = 63 columns; the last one gets the rest of 80.
    return (f"{row.id:>6} {stamp(row.seen):<11} {show(row.status, 11):<11} "
            f"{show(row.sender, 15):<15} {show(row.receiver, 15):<15} "
            f"{show(last, 16)}")


HEADER = f"{'ID':>6} {'SEEN':<11} {'STATUS':<11} {'FROM':<15} {'TO':<15} "


def dump(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str))


def filter_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        click.option("--since", help="From this time: 2026-12-01, 10:00, 2h, 3d."),
        click.option("--until", help="Before this time (same forms)."),
        click.option("--from", "sender", help="Sender number or its start (089 123...)."),
        click.option("--to", "receiver", help="Receiver number or its start."),
        click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 1000)),
        click.option("--after", help="Continue a list (the cursor it printed last)."),
    ]):
        func = option(func)
    return func


@click.group("faxes")
def faxes() -> None:
    """Every fax's history: where it went, when, and why."""


@faxes.command("list")
@config_option
@filter_options
@click.option("--status", type=click.Choice(
    ["processing", "retrying", "delivered", "quarantined", "released", "routed", "dismissed"]))
@click.option("--rule", help="Routed by this rule.")
@click.option("--label", help="Carrying this label.")
@click.option("--destination", help="Routed to this destination type (email, folder...).")
@click.option("--text", help="Containing this text (where [plugins.history] store_text).")
@json_option
def faxes_list(config_path: Path, since: str | None, until: str | None, sender: str | None,
               receiver: str | None, limit: int, after: str | None, status: str | None,
               rule: str | None, label: str | None, destination: str | None,
               text: str | None, as_json: bool) -> None:
    """List faxes, newest first."""
    with opened(config_path) as app:
        flt = FaxFilter(status=status, since=when(since), until=when(until),
                        sender=number(app, sender), receiver=number(app, receiver),
                        label=label, rule=rule, destination=destination, text=text)
        rows, cursor = actions.records(app).faxes(flt, Cursor.parse(after), limit)
    if as_json:
        dump({"faxes": [asdict(r) for r in rows], "next": cursor.token() if cursor else None})
        return
    click.echo(HEADER + "RULES")
    for row in rows:
        click.echo(row_line(row, ", ".join(row.rules) or (row.reason or "")))
    if cursor:
        click.echo(f"more: --after {cursor.token()}")


@faxes.command("show")
@config_option
@click.argument("ident", type=int)
@json_option
def faxes_show(config_path: Path, ident: int, as_json: bool) -> None:
    """One fax: its metadata, routes and timeline."""
    with opened(config_path) as app:
        detail = actions.records(app).fax(ident)
    if detail is None:
        raise click.ClickException(f"no fax #{ident}")
    if as_json:
        dump(asdict(detail))
        return
    click.echo("\n".join(detail_lines(detail)))


def detail_lines(d: FaxDetail) -> list[str]:
    r = d.row
    lines = [f"Fax #{r.id}  {show(r.fax_id, 60)}  (topic {show(r.topic, 20)})",
             f"  status     {r.status}",
             f"  received   {stamp(r.received)}   seen {stamp(r.seen)}",
             f"  from       {show(r.sender, 30)}   csid {show(r.csid, 30)}",
             f"  to         {show(r.receiver, 30)}",
             f"  pages      {r.pages if r.pages is not None else '-'} read"
             f" of {r.pages_total if r.pages_total is not None else '-'}",
             f"  labels     {show(', '.join(r.labels) or '-', 60)}",
             f"  rules      {show(', '.join(r.rules) or '-', 60)}"]
    if d.fields:
        lines.append("  fields     " + show(", ".join(f"{k}={v}" for k, v in d.fields.items()),
                                           66))
    lines.append("Routes:")
    for route in d.routes or []:
        ref = f" [{show(route.reference, 40)}]" if route.reference else ""
        lines.append(f"  {show(route.key, 24)} {route.type:<8} {route.state}{ref}")
        if route.detail:
            lines.append(f"      {show(route.detail, 72)}")
    lines.append("Timeline:")
    for event in d.events:
        lines.append(f"  {datetime.fromtimestamp(event.time):%m-%d %H:%M:%S}  "
                     f"{event.name:<12} {show(event.worker, 14):<14} {show(event.detail, 36)}")
    if d.quarantine is not None:
        lines += quarantine_lines(d.quarantine)
    return lines


def quarantine_lines(item: QuarantineItem) -> list[str]:
    lines = [f"Quarantine: {item.state}"
             + (f" by {show(item.resolved_by, 20)} at {stamp(item.resolved_at)}"
                if item.resolved_by else "")]
    for reason in item.reasons:  # in full: it is what the operator has to act on
        lines += wrapped("  why        ", reason)
    if item.delivered:
        lines.append(f"  delivered before: {show(', '.join(item.delivered), 58)}")
    lines += [f"  document   {show(doc.name, 40)} {doc.size} bytes" for doc in item.documents]
    if item.note:
        lines.append(f"  note       {show(item.note, 66)}")
    return lines


@click.group("quarantine")
def quarantine() -> None:
    """The faxes nobody could process: see why, then release, route or dismiss them."""


def _items(app: App, state: str, reason: str | None, since: str | None, until: str | None,
           limit: int, after: str | None) -> tuple[list[tuple[FaxRow, QuarantineItem]],
                                                   Cursor | None]:
    flt = FaxFilter(status=state, reason=reason, since=when(since), until=when(until))
    store: RecordStore = actions.records(app)
    return store.quarantine_list(flt, Cursor.parse(after), limit)


@quarantine.command("list")
@config_option
@filter_options
@click.option("--state", default="open", show_default=True,
              type=click.Choice(["open", "released", "routed", "dismissed"]))
@click.option("--reason", help="Only items whose reason contains this text (SMTP, damaged...).")
@json_option
def quarantine_list(config_path: Path, since: str | None, until: str | None,
                    sender: str | None, receiver: str | None, limit: int, after: str | None,
                    state: str, reason: str | None, as_json: bool) -> None:
    """List quarantined faxes, newest first."""
    with opened(config_path) as app:
        found, cursor = _items(app, state, reason, since, until, limit, after)
    if as_json:
        dump({"items": [{**asdict(row), "quarantine": asdict(item)} for row, item in found],
              "next": cursor.token() if cursor else None})
        return
    click.echo(HEADER + "REASON")
    for row, item in found:
        click.echo(row_line(row, "; ".join(item.reasons)))
    if cursor:
        click.echo(f"more: --after {cursor.token()}")


@quarantine.command("show")
@config_option
@click.argument("ident", type=int)
@json_option
def quarantine_show(config_path: Path, ident: int, as_json: bool) -> None:
    """One quarantined fax with its timeline."""
    with opened(config_path) as app:
        detail = actions.records(app).fax(ident)
    if detail is None or detail.quarantine is None:
        raise click.ClickException(f"#{ident} is not in the quarantine")
    if as_json:
        dump(asdict(detail))
        return
    click.echo("\n".join(detail_lines(detail)))


def _act(config_path: Path, idents: tuple[int, ...], everything: bool, reason: str | None,
         since: str | None, until: str | None, topic: str | None,
         one: Callable[[App, int], actions.Result],
         many: Callable[[App, FaxFilter], list[actions.Result]]) -> None:
    if bool(idents) == everything:
        raise click.UsageError("give item numbers, or --all with filters (--reason, --since)")
    with opened(config_path) as app:
        results: list[actions.Result] = []
        if everything:
            results = many(app, FaxFilter(status="open", reason=reason, since=when(since),
                                          until=when(until), topic=topic))
        for ident in idents:
            try:
                results.append(one(app, ident))
            except actions.ActionError as exc:
                results.append(actions.Result(ident, False, str(exc)))
    for result in results:
        click.echo(escape_controls(result.message))
    done = sum(r.done for r in results)
    click.echo(f"{done} of {len(results)} done")
    if done < len(results):
        sys.exit(1)


def action_options(func: Callable[..., Any]) -> Callable[..., Any]:
    for option in reversed([
        config_option,
        click.argument("idents", nargs=-1, type=int),
        click.option("--all", "everything", is_flag=True,
                     help="Every open item matching --reason/--since/--until."),
        click.option("--reason", help="With --all: reason contains this text."),
        click.option("--since", help="With --all: quarantined since (10:00, 2h...)."),
        click.option("--until", help="With --all: quarantined before."),
        click.option("--topic", help="With --all: from this topic only."),
        click.option("--as", "who", default=getpass.getuser, show_default="your login",
                     help="Your name in the fax's timeline."),
        click.option("--note", default="", help="Why; kept in the timeline."),
    ]):
        func = option(func)
    return func


@quarantine.command("release")
@action_options
def quarantine_release(config_path: Path, idents: tuple[int, ...], everything: bool,
                       reason: str | None, since: str | None, until: str | None,
                       topic: str | None, who: str, note: str) -> None:
    """Run the pipeline again on quarantined faxes, with the configuration as it is now."""
    _act(config_path, idents, everything, reason, since, until, topic,
         lambda app, i: actions.release(app, i, who, note),
         lambda app, flt: actions.bulk(app, flt, "release", who, note))


@quarantine.command("route")
@action_options
@click.option("--target", required=True, help="A rule name from the configuration.")
def quarantine_route(config_path: Path, idents: tuple[int, ...], everything: bool,
                     reason: str | None, since: str | None, until: str | None,
                     topic: str | None, who: str, note: str, target: str) -> None:
    """Deliver quarantined faxes to the routes of a rule you pick."""
    _act(config_path, idents, everything, reason, since, until, topic,
         lambda app, i: actions.route(app, i, target, who, note),
         lambda app, flt: actions.bulk(app, flt, "route", who, note, target))


@quarantine.command("dismiss")
@action_options
def quarantine_dismiss(config_path: Path, idents: tuple[int, ...], everything: bool,
                       reason: str | None, since: str | None, until: str | None,
                       topic: str | None, who: str, note: str) -> None:
    """Close quarantined faxes without delivering them (--note says why)."""
    _act(config_path, idents, everything, reason, since, until, topic,
         lambda app, i: actions.dismiss(app, i, who, note),
         lambda app, flt: actions.bulk(app, flt, "dismiss", who, note))


__all__ = ["FaxflowError", "faxes", "quarantine"]
