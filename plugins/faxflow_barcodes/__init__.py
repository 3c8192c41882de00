"""Plugin ``barcodes``: separator sheets split a fax into parts, and ``faxflow coversheet``
prints the cover sheets that route faxes by barcode (docs/barcodes.md).

The barcodes themselves are read by a text-extraction plugin (the OCR plugin reads them on
every page) and reach this plugin as ``PageText.barcodes``.

    [plugins.barcodes]
    separators = ["FAXFLOW-SPLIT"]   # a page with one of these values starts a new part
"""

from __future__ import annotations

from typing import Any

import click

from faxflow.config import Config
from faxflow.hookspecs import hookimpl
from faxflow.types import Fax, Part
from faxflow_barcodes import sheet

OPTIONS = ("separators",)
MAX_SEPARATORS = 20


def separators(table: dict[str, Any]) -> frozenset[str]:
    value = table.get("separators", [])
    return frozenset(value) if isinstance(value, list) else frozenset()


@hookimpl
def faxflow_check_config(config: Config) -> list[str]:
    table = config.plugin_options("barcodes")
    problems = [f"{k}: unknown option (known: {', '.join(OPTIONS)})" for k in table
                if k not in OPTIONS]
    value = table.get("separators", [])
    if not (isinstance(value, list) and len(value) <= MAX_SEPARATORS and all(
            isinstance(v, str) and v and v.isprintable() for v in value)):
        problems.append(f"separators: must be a list of at most {MAX_SEPARATORS} non-empty "
                        "printable values")
    return problems


@hookimpl
def faxflow_split(fax: Fax, app: Any) -> list[Part] | None:
    """Parts between separator pages (a page with a barcode whose value is a separator);
    None when the fax has no separator page. Separator pages are in no part."""
    wanted = separators(app.plugin_options("barcodes"))
    if not wanted:
        return None
    cuts = {i for i, page in enumerate(fax.pages, 1)
            if any(b.value in wanted for b in page.barcodes)}
    if not cuts:
        return None
    parts: list[list[int]] = [[]]
    for i in range(1, len(fax.pages) + 1):
        if i in cuts:
            parts.append([])
        else:
            parts[-1].append(i)
    return [Part(tuple(p), f"separator sheet before page {p[0]}" if p[0] - 1 in cuts
                 else "first pages") for p in parts if p]


@hookimpl
def faxflow_register_commands(cli: click.Group) -> None:
    @cli.command("coversheet")
    @click.option("--value", required=True, help="the routing code, e.g. PAT-12345")
    @click.option("--text", default="", help="a title printed above the code")
    @click.option("--format", "fmt", type=click.Choice(sorted(sheet.FORMATS)), default="qr",
                  show_default=True)
    @click.option("--module-mm", type=float, default=sheet.DEFAULT_MODULE_MM,
                  show_default=True, help="printed size of one module")
    @click.option("-o", "--output", type=click.Path(dir_okay=False), required=True)
    def coversheet(value: str, text: str, fmt: str, module_mm: float, output: str) -> None:
        """Write an A4 cover sheet (PDF) with the value as a QR or DataMatrix code sized to
        survive a standard-resolution fax, for senders to print and put on top."""
        try:
            data = sheet.make(value, text, fmt, module_mm)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from None
        with open(output, "wb") as fh:
            fh.write(data)
        click.echo(f"{output}: {fmt} code of {value!r}, {module_mm:g} mm modules")
