"""Command line: python -m faxflow.samples --out DIR [options]."""

from __future__ import annotations

import argparse
import sys
import time

from . import (
    FORMATS,
    KINDS,
    MAX_PAGES,
    RESOLUTIONS,
    BarcodeSpec,
    Sheet,
    make_fax,
    separator,
    write_fax,
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m faxflow.samples",
        description="Write sample faxes (PDF or G4 TIFF) with JSON ground-truth sidecars.",
    )
    parser.add_argument("--out", required=True, help="output folder (created if missing)")
    parser.add_argument("--kind", choices=KINDS, default="invoice")
    parser.add_argument("--pages", type=int, default=1, help=f"pages per document, 1..{MAX_PAGES}")
    parser.add_argument("--resolution", choices=RESOLUTIONS, default="fine")
    parser.add_argument("--fmt", choices=FORMATS, default="pdf")
    parser.add_argument("--noisy", action="store_true", help="skew, specks, corrupted scanlines")
    parser.add_argument("--skew", type=float, default=None, help="skew every page by DEGREES")
    parser.add_argument("--upside-down", type=int, action="append", default=[], metavar="PAGE",
                        help="rotate this page (1-based) by 180 degrees; repeatable")
    parser.add_argument("--text", action="append", default=None, metavar="TEXT",
                        help="the body of one page (\\n between paragraphs); repeat for more "
                             "pages; --pages is then the number of --text")
    parser.add_argument("--cover", metavar="VALUE[:FORMAT[:MODULE_MM]]",
                        help="a cover sheet first with this barcode, e.g. PAT-12345:qr:0.5")
    parser.add_argument("--separator-before", type=int, action="append", default=[],
                        metavar="PAGE", help="a FAXFLOW-SPLIT separator sheet before this "
                        "content page (1-based); repeatable")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--count", type=int, default=1,
                        help="number of documents, with seeds seed, seed+1, ...")
    args = parser.parse_args(argv)
    sheets = [separator(page) for page in args.separator_before]
    if args.cover:
        value, _, rest = args.cover.partition(":")
        fmt, _, module = rest.partition(":")
        try:
            sheets.insert(0, Sheet(1, "Cover sheet", (BarcodeSpec(value, fmt or "qr",
                                                                  float(module or 0.7)),)))
        except ValueError as exc:
            parser.error(f"--cover: {exc}")
    for seed in range(args.seed, args.seed + args.count):
        start = time.perf_counter()
        try:
            fax = make_fax(kind=args.kind, pages=args.pages, resolution=args.resolution,
                           fmt=args.fmt, noisy=args.noisy, skew=args.skew,
                           upside_down_pages=tuple(args.upside_down), seed=seed,
                           text=[t.replace("\\n", "\n") for t in args.text]
                           if args.text else None, sheets=sheets)
        except ValueError as exc:
            parser.error(str(exc))
        path = write_fax(fax, args.out)
        print(f"{path} ({fax.pages} pages, {len(fax.content)} bytes, "
              f"{time.perf_counter() - start:.2f} s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
