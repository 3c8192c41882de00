"""The route option ``drop_cover``: deliver a fax without the cover sheet that carried its
routing code.

The core handles it for every destination type: before `faxflow_deliver` it takes the
option out of the route and hands the destination a view of the fax whose first document
lacks its first page, so no destination knows about barcodes or cover sheets. The cover is
the fax's first page, and only when a barcode was read on it: a fax sent without a cover
sheet loses nothing. A one-page fax is delivered whole.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import PurePath
from typing import Any

from faxflow import subset
from faxflow.types import Fax, Route

OPTION = "drop_cover"
CORE_ROUTE_OPTIONS = (OPTION,)


def check(options: dict[str, Any]) -> list[str]:
    """Problems of the core's own route options (as ``"option: message"``)."""
    value = options.get(OPTION, False)
    return [] if isinstance(value, bool) else [f"{OPTION}: must be true or false"]


def destination_options(options: dict[str, Any]) -> dict[str, Any]:
    """A route's options as its destination sees and checks them: the core's taken out."""
    return {k: v for k, v in options.items() if k not in CORE_ROUTE_OPTIONS}


def cover_page(fax: Fax) -> bool:
    """Whether the fax's first page is a cover sheet we may drop: a barcode was read on it
    and other pages follow."""
    return len(fax.pages) > 1 and bool(fax.pages[0].barcodes) and bool(fax.documents)


def view(fax: Fax, route: Route) -> tuple[Fax, dict[str, Any]]:
    """The fax and options a destination gets for `route`."""
    options = destination_options(route.options)
    if route.options.get(OPTION) is not True or not cover_page(fax):
        return fax, options
    first = fax.documents[0]
    count = sum(1 for p in fax.pages if p.document == fax.pages[0].document)
    if count < 2 and len(fax.documents) < 2:
        return fax, options
    if count < 2:  # the cover is a document of its own: leave that document out
        return replace(fax, documents=fax.documents[1:], pages=fax.pages[1:],
                       artifacts=_artifacts(fax, None)), options
    stem = PurePath(first.path.name).stem
    target = first.path.with_name(f"{stem}.nocover.pdf")
    if not target.exists():  # built once per attempt, the same bytes every time
        subset.write_pages([(first.path, n) for n in range(2, count + 1)], target)
    name = f"{PurePath(first.ref.name).stem}.pdf"
    document = subset.describe(target, replace(first.ref, name=name, extension="pdf"))
    pages = [replace(p, number=p.number - 1, document=name)
             if p.document == fax.pages[0].document else p
             for p in fax.pages[1:]]
    searchable = fax.artifacts.get(f"searchable_pdf:{first.ref.name}")
    nocover = None
    if searchable is not None:
        nocover = searchable.with_name(f"{stem}.nocover.searchable.pdf")
        if not nocover.exists():
            subset.write_pages([(searchable, n) for n in range(2, count + 1)], nocover)
    return replace(fax, documents=[document, *fax.documents[1:]], pages=pages,
                   artifacts=_artifacts(fax, nocover)), options


def _artifacts(fax: Fax, searchable: Any) -> dict[str, Any]:
    """The artifacts with the first document's searchable PDF swapped (or left out)."""
    first = fax.documents[0].ref.name
    out = {k: v for k, v in fax.artifacts.items()
           if k not in ("searchable_pdf", f"searchable_pdf:{first}")}
    if searchable is not None:
        out["searchable_pdf"] = searchable
        out[f"searchable_pdf:{first}"] = searchable
    elif len(fax.documents) > 1:
        second = fax.artifacts.get(f"searchable_pdf:{fax.documents[1].ref.name}")
        if second is not None:
            out["searchable_pdf"] = second
    return out
