"""Benchmark: evaluate 1,000 rules against the text of a 10-page fax, versus OCR of one page.

    .venv/bin/python bench/rules.py [--rules 1000] [--pages 10] [--repeat 5]

No rule matches, so every rule is evaluated (the worst case: the fax ends at the default
route), and each rule's text condition comes first so nothing is skipped cheaply. The mix:
word lists, phrases, regexes with named groups, fuzzy matches, numbers, CSID globs and time
windows. The baseline is tesseract on one page of the same sample, measured in this run.
"""

from __future__ import annotations

import argparse
import statistics
import time
from datetime import UTC, datetime

import faxflow_rules
import pluggy
from faxflow_rules import ruleset

import faxflow.hookspecs
from faxflow.app import App
from faxflow.config import parse
from faxflow.samples import make_fax as make_sample
from faxflow.types import DestinationType, Fax, Job, Number, PageText

HEAD = """
[plugins.rules]
default_country = "DE"
timezone = "Europe/Berlin"
[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"
path = "review/{{ received | date('%Y-%m') }}"
"""


def rule(i: int) -> str:
    kind = i % 5
    if kind == 0:
        when = f'when.text = {{ any = ["zqword{i}", "Lieferschein {i}", "xyz{i}"] }}'
    elif kind == 1:
        when = f"when.text = {{ regex = 'Vertrag\\s+Nr\\.?\\s*(?P<contract{i}>V{i}-\\d+)' }}"
    elif kind == 2:
        when = f'when.text = {{ fuzzy = "Kostenvoranschlag Nummer {i}", threshold = 90 }}'
    elif kind == 3:
        when = (f'when.text = {{ phrase = "bitte um rueckruf {i}" }}\n'
                f'when.receiver = {{ prefix = "089 {1000 + i}" }}')
    else:
        when = (f'when.text = {{ all = ["invoice", "mahnung{i}"], pages = "1-3" }}\n'
                f'when.csid = "*praxis {i}*"\n'
                'when.received = { weekdays = "mon-fri", between = ["08:00", "18:00"] }')
    return (f'[[rule]]\nname = "rule-{i}"\n{when}\n[[rule.route]]\ntype = "email"\n'
            f'to = "team{i}@example.org"\nsubject = "Rule {i}: {{{{ fax_id }}}} {{{{ csid }}}}"\n')


def build(n_rules: int) -> tuple[App, float]:
    class Destinations:
        @faxflow.hookspecs.hookimpl
        def faxflow_destination_types(self) -> list[DestinationType]:
            return [DestinationType("folder"), DestinationType("email")]

    pm = pluggy.PluginManager("faxflow")
    pm.add_hookspecs(faxflow.hookspecs)
    pm.register(faxflow_rules, name="rules")
    pm.register(Destinations(), name="destinations")
    config, _ = parse(HEAD + "\n".join(rule(i) for i in range(n_rules)))
    app = App(pm=pm, config=config)
    app.load_destination_types()
    started = time.perf_counter()
    problems = app.check_config(config)
    app.configure(config)
    load_seconds = time.perf_counter() - started
    assert not problems, problems[:3]
    return app, load_seconds


def ocr_one_page() -> float | None:
    try:
        import pytesseract
        from PIL import Image
    except ImportError:
        return None
    import io

    sample = make_sample(kind="invoice", pages=1, resolution="fine", fmt="tiff", seed=1)
    with Image.open(io.BytesIO(sample.content)) as image:
        image.load()
        started = time.perf_counter()
        pytesseract.image_to_string(image, lang="eng")
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rules", type=int, default=1000)
    parser.add_argument("--pages", type=int, default=10)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()

    app, load_seconds = build(args.rules)
    sample = make_sample(kind="invoice", pages=args.pages, seed=1)
    fax = Fax(job=Job(id="bench", receiver_isdn=Number("+4930123456", "+4930123456"),
                      sender_fax_id="MEDICAL PRACTICE", date_received=datetime.now(UTC)),
              topic="bench",
              pages=[PageText(i, t) for i, t in enumerate(sample.page_texts, start=1)])
    rules = faxflow_rules.current(app)
    times = []
    for _ in range(args.repeat):
        started = time.perf_counter()
        evaluation = ruleset.evaluate(rules, fax)
        rendered = ruleset.render(rules, evaluation)
        times.append(time.perf_counter() - started)
    assert evaluation.used_default and len(rendered) == 1
    median = statistics.median(times)
    print(f"rules: {args.rules}, pages: {args.pages}, text: {len(fax.text)} characters")
    print(f"load + validate {args.rules} rules: {load_seconds * 1000:.0f} ms")
    print(f"evaluate + render, median of {args.repeat}: {median * 1000:.1f} ms "
          f"(min {min(times) * 1000:.1f}, max {max(times) * 1000:.1f})")
    ocr = ocr_one_page()
    if ocr is None:
        print("OCR baseline: skipped (pytesseract not installed)")
    else:
        print(f"OCR of one fine page (tesseract, same run): {ocr * 1000:.0f} ms; "
              f"rules take {median / ocr:.3f} x that")


if __name__ == "__main__":
    main()
