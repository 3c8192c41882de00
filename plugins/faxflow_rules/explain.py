"""``faxflow explain``: run one document through text extraction, classification and the rules,
and show which rule matched and why, the fields and the rendered routes. Delivers nothing.

It calls the same functions as the hooks (`ruleset.evaluate`, `ruleset.render`) and the
core's own stages for text extraction and classification, so what it shows is what the
worker would do.
"""

from __future__ import annotations

import hashlib
import json
import mimetypes
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from faxflow import parts, protocol
from faxflow.app import App, load_app
from faxflow.delivery import one_line
from faxflow.errors import ConfigError, FaxflowError
from faxflow.types import Document, DocumentRef, Fax, Job, Number

from . import current, ruleset
from .conditions import SNIPPET, Check

MARK = {True: "yes ", False: "no  ", None: "--  "}


def build_app(config_path: Path, plugins_dir: Path | None = None) -> App:
    """The app for a config file: validated and configured, exactly as `faxflow run` builds it."""
    try:
        return load_app(config_path, plugins_dir=plugins_dir)
    except ConfigError as exc:
        raise click.ClickException(f"invalid configuration:\n{exc}") from None


def make_fax(document: Path, *, to: str | None, sender: str | None, csid: str | None,
             received: datetime, cost_center: str | None, resolution: str | None,
             labels: tuple[str, ...]) -> Fax:
    data = document.read_bytes()
    ext = document.suffix.lower().lstrip(".")
    ref = DocumentRef(url=document.resolve().as_uri(), name=document.name, extension=ext)
    doc = Document(ref, document, len(data), hashlib.sha256(data).hexdigest(),
                   mimetypes.guess_type(document.name)[0])
    job = Job(id="explain", receiver_isdn=Number(to, None) if to else None,
              sender_isdn=Number(sender, None) if sender else None, sender_fax_id=csid,
              date_received=received, cost_center=cost_center, fax_resolution=resolution,
              documents=(ref,))
    return Fax(job=job, topic="explain", documents=[doc], labels=set(labels))


def run(app: App, fax: Fax) -> dict[str, Any]:
    """Extract, classify, evaluate and render for one fax; the report as plain data."""
    protocol.extract_text(fax, app)
    if fax.problems:
        # What the worker would quarantine the fax for, with every page error.
        raise FaxflowError("\n".join(["cannot read the document: "
                                      + "; ".join(p.message for p in fax.problems),
                                      *_document_lines(documents(fax))]))
    if not fax.pages:
        raise FaxflowError("no text-extraction plugin could read this document")
    split = protocol.split(fax, app)
    if fax.problems:
        raise FaxflowError("splitting failed: " + "; ".join(p.message for p in fax.problems))
    if split is None:
        return evaluate(app, fax)
    # Split (separator sheets): each part is routed on its own, as the worker would.
    data = evaluate(app, fax, classify=False)
    data["parts"] = []
    for n, part in enumerate(split, 1):
        sub = parts.child(fax, part, n, len(split), documents=False)
        data["parts"].append({"part": n, "id": sub.id, "pages": list(part.pages),
                              "reason": part.reason, **evaluate(app, sub)})
    return data


def evaluate(app: App, fax: Fax, classify: bool = True) -> dict[str, Any]:
    if classify:
        protocol.classify(fax, app)
        if fax.problems:
            raise FaxflowError("classification failed: "
                               + "; ".join(p.message for p in fax.problems))
    rules = current(app)
    evaluation = ruleset.evaluate(rules, fax)
    rendered = ruleset.render(rules, evaluation)
    return report(fax, evaluation, rendered)


def documents(fax: Fax) -> list[dict[str, Any]]:
    """Per document: pages read of pages found, every page error, pages not read on purpose."""
    out = []
    for index, document in enumerate(fax.documents, start=1):
        pages = [p for p in fax.pages if p.document == document.ref.name]
        out.append({
            "document": protocol.document_label(index, len(fax.documents), document.ref.name),
            "pages_read": sum(p.read for p in pages), "pages_total": len(pages),
            "page_errors": [{"page": p.number, "error": p.error} for p in pages if p.error],
            "pages_skipped": [p.number for p in pages if p.skipped]})
    return out


def barcodes(fax: Fax, evaluation: ruleset.Evaluation) -> list[dict[str, Any]]:
    """Every barcode read, by page of the fax, with the conditions it satisfied (values cut
    to one short line: they are the sender's text)."""
    satisfied: dict[tuple[int, str, str], list[str]] = {}

    def walk(rule: str, check: Check) -> None:
        if check.ok is True and check.barcode is not None:
            b = check.barcode
            satisfied.setdefault((b.page, b.format, b.value), []).append(
                f"rule {rule!r}: {check.what}")
        for child in check.children:
            walk(rule, child)

    for result in evaluation.results:
        if result.check is not None:
            walk(result.rule.name, result.check)
    out = []
    for position, page in enumerate(fax.pages, 1):
        for b in page.barcodes:
            out.append({"page": position, "document": page.document, "page_in_document":
                        page.number, "format": b.format, "value": one_line(b.value, SNIPPET),
                        "length": len(b.value), "box_mm": list(b.box),
                        "satisfied": satisfied.get((position, b.format, b.value), [])})
    return out


def _barcode_lines(codes: list[dict[str, Any]]) -> list[str]:
    if not codes:
        return ["  none"]
    lines = []
    for c in codes:
        box = ", ".join(f"{v:g}" for v in c["box_mm"])
        lines.append(f"  page {c['page']}: {c['format']} {c['value']!r}"
                     + (f" ({c['length']} characters)" if c["length"] > SNIPPET else "")
                     + f" at [{box}] mm")
        lines += [f"    satisfies {s}" for s in c["satisfied"]] or \
            ["    satisfies no condition"]
    return lines


def _document_lines(docs: list[dict[str, Any]]) -> list[str]:
    lines = []
    for d in docs:
        lines.append(f"  {d['document']}: read {d['pages_read']} of {d['pages_total']} pages")
        lines += [f"    page {e['page']}: {e['error']}" for e in d["page_errors"]]
        skipped = d["pages_skipped"]
        if skipped:
            lines.append(f"    page{'s' if len(skipped) > 1 else ''} "
                         f"{protocol.page_list(skipped)}: not read on purpose (skipped by "
                         "the text-extraction plugin, e.g. max_pages)")
    return lines


def report(fax: Fax, evaluation: ruleset.Evaluation,
           rendered: list[ruleset.Rendered]) -> dict[str, Any]:
    v = evaluation.variables
    first_stop = next((r.rule.name for r in evaluation.results
                       if r.matched and not r.rule.cont), None)
    return {
        "fax": {"receiver": v["receiver"], "sender": v["sender"], "csid": v["csid"],
                "cost_center": v["cost_center"], "pages": v["pages"],
                "pages_read": fax.pages_read, "pages_reported": fax.job.fax_page_count,
                "resolution": v["resolution"],
                "received": v["received"].isoformat() if v["received"] else None,
                "text_chars": len(fax.text)},
        "classifiers": {heading: list(lines) for heading, lines in fax.explanations.items()},
        "rules": [{
            "name": r.rule.name, "evaluated": r.check is not None, "matched": r.matched,
            "continue": r.rule.cont,
            "check": r.check.to_dict() if r.check else None,
            "skipped_because": None if r.check else f"rule {first_stop!r} matched first",
            "fields": {k: _plain(x) for k, x in r.fields.items()},
            "field_errors": r.field_errors,
        } for r in evaluation.results],
        "documents": documents(fax),
        "barcodes": barcodes(fax, evaluation),
        "default_route_used": evaluation.used_default,
        "labels": sorted(fax.labels | evaluation.labels),
        "fields": {k: _plain(x) for k, x in evaluation.variables["fields"].items()},
        "routes": [{"key": r.key, "type": r.type, "rule": r.rule,
                    "options": r.route.options if r.route else None, "error": r.error}
                   for r in rendered],
    }


def _plain(value: Any) -> Any:
    return value if isinstance(value, str | int | float | bool) or value is None else str(value)


def format_text(data: dict[str, Any]) -> str:
    if data.get("parts"):
        lines = [f"Split into {len(data['parts'])} parts (each routed on its own; the pages in "
                 "no part are dropped):"]
        lines += [f"  part {p['part']} ({p['id']}): pages {protocol.page_list(p['pages'])}"
                  for p in data["parts"]]
        head = format_text({**data, "parts": None}).split("\nRules:")[0]
        lines += ["", head]
        for p in data["parts"]:
            lines += ["", f"=== Part {p['part']} of {len(data['parts'])} ({p['id']}, pages "
                      f"{protocol.page_list(p['pages'])} of the fax) ==="]
            lines.append("Rules:" + format_text(p).split("\nRules:", 1)[1])
        return "\n".join(lines)
    f = data["fax"]
    lines = [f"Fax: {f['pages']} page(s), {f['text_chars']} characters of text",
             f"  receiver {f['receiver'] or '-'}  sender {f['sender'] or '-'}  "
             f"csid {f['csid']!r}  received {f['received'] or '-'}", "", "Documents:",
             *_document_lines(data["documents"]), "", "Barcodes:",
             *_barcode_lines(data["barcodes"]), ""]
    # What classifier plugins said about the fax, and why (absent from reports the console
    # kept before there were any).
    if data.get("classifiers"):
        lines.append("Classifiers:")
        for heading, said in data["classifiers"].items():
            lines.append(f"  {heading}:")
            lines += [f"    {line}" for line in said]
        lines.append("")
    lines.append("Rules:")
    for i, rule in enumerate(data["rules"], start=1):
        state = ("MATCHED" + (" (continue)" if rule["continue"] else "")) if rule["matched"] \
            else ("no match" if rule["evaluated"] else "not evaluated: "
                  + rule["skipped_because"])
        lines.append(f"  {i}. {rule['name']}: {state}")
        if rule["check"]:
            lines += _check_lines(rule["check"], 6)
        for error in rule["field_errors"]:
            lines.append(f"      field not set: {error}")
    lines += ["", "Default route: " + ("used (no rule routed this fax)"
                                       if data["default_route_used"] else "not used"),
              "Labels: " + (", ".join(data["labels"]) or "none"), "Fields:"]
    lines += [f"  {k} = {v!r}" for k, v in data["fields"].items()] or ["  none"]
    lines.append("Routes (nothing was delivered):")
    for route in data["routes"]:
        if route["error"]:
            lines.append(f"  {route['key']} ({route['type']}): ERROR {route['error']}")
        else:
            options = json.dumps(route["options"], ensure_ascii=False, sort_keys=True)
            lines.append(f"  {route['key']} ({route['type']}): {options}")
    return "\n".join(lines)


def _check_lines(check: dict[str, Any], indent: int) -> list[str]:
    text = " " * indent + MARK[check["result"]] + check["condition"]
    if check.get("detail"):
        text += f": {check['detail']}"
    if check.get("captures"):
        text += f" {check['captures']}"
    lines = [text]
    for child in check.get("children", []):
        lines += _check_lines(child, indent + 2)
    return lines


def _parse_time(_: click.Context, __: click.Parameter, value: str | None) -> datetime:
    if value is None:
        return datetime.now(UTC)
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use ISO 8601, e.g. 2026-11-27T19:30:00+01:00") from None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


@click.command()
@click.option("-c", "--config", "config_path", required=True, envvar="FAXFLOW_CONFIG",
              type=click.Path(dir_okay=False, path_type=Path),
              help="The TOML configuration file [env FAXFLOW_CONFIG].")
@click.argument("document", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--to", help="Receiver number, any usual format.")
@click.option("--from", "sender", help="Sender number, any usual format.")
@click.option("--csid", help="Sender fax id (CSID).")
@click.option("--received", callback=_parse_time,
              help="When it was received, ISO 8601 (default: now; no offset means UTC).")
@click.option("--cost-center", help="Cost center.")
@click.option("--resolution", help="Fax resolution as Retarus sends it.")
@click.option("--label", "labels", multiple=True, help="A label another classifier would set.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON for machines.")
@click.option("--plugins-dir", type=click.Path(path_type=Path, file_okay=False, exists=True),
              envvar="FAXFLOW_PLUGINS_DIR", help="Also load every *.py file in DIR as a plugin.")
def explain(config_path: Path, document: Path, to: str | None, sender: str | None,
            csid: str | None, received: datetime, cost_center: str | None,
            resolution: str | None, labels: tuple[str, ...], as_json: bool,
            plugins_dir: Path | None) -> None:
    """Show how the rules classify and route DOCUMENT; delivers nothing.

    The document is read by the text-extraction plugins (OCR) and classified by every
    classifier, exactly as the worker would; nothing is delivered or acknowledged.
    """
    try:
        app = build_app(config_path, plugins_dir)
        fax = make_fax(document, to=to, sender=sender, csid=csid, received=received,
                       cost_center=cost_center, resolution=resolution, labels=labels)
        data = run(app, fax)
    except (FaxflowError, OSError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps(data, indent=2, ensure_ascii=False, default=str) if as_json
               else format_text(data))
    if any(r["error"] for r in data["routes"]):
        raise SystemExit(1)
