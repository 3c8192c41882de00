"""Pytest fixtures for plugin authors (loaded through the ``pytest11`` entry point).

    def test_my_plugin(faxflow_app_factory, sample_fax):
        app = faxflow_app_factory(plugins={"mine": my_plugin}, config='''
            [plugins.mine]
            greeting = "hi"
        ''')
        fax = sample_fax(kind="invoice")
        decision = app.process_fax(fax)

- `faxflow_app_factory`: a fresh App (own plugin manager) with the core and the plugins you
  give; installed plugins only when asked: ``load=["ocr", "rules"]`` loads those by their
  entry-point names (the built-ins are entry points too), ``entry_points=True`` loads all.
- `sample_fax`: a `Fax` whose document is a generated fax page written to a temporary
  folder. ``fax.pages`` is empty until text is extracted (``app.extract_text`` with the
  ``ocr`` plugin loaded, or set it yourself); the ground truth is
  ``fax.scratch["ground_truth"]``, a list with one string per page. Give your own text with
  ``text=["page one", "page two"]``, and the job's metadata with ``topic=``, ``received=``
  (a datetime), ``csid=``, ``receiver=``, ``sender=``. A `Job` is frozen: to change it
  afterwards use ``fax.job = dataclasses.replace(fax.job, cost_center="x")``.
- `simulator`: a running Fax2WSPull simulator on loopback with user ``99999``/``secret`` and
  topic ``abc123``; ``simulator.api_url``, ``simulator.sim.add_fax(...)``.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

if TYPE_CHECKING:
    from faxflow.app import App
    from faxflow.simulator import SimulatorServer
    from faxflow.types import Fax

SIM_USER, SIM_PASSWORD, SIM_TOPIC = "99999", "secret", "abc123"


@pytest.fixture
def faxflow_app_factory(tmp_path: Path) -> Callable[..., App]:
    """Build an App: ``factory(plugins={name: obj}, config=toml_text, entry_points=False)``."""
    from faxflow.app import App
    from faxflow.config import parse
    from faxflow.errors import ConfigError
    from faxflow.journal import SQLiteJournal
    from faxflow.plugins import make_manager

    def factory(plugins: dict[str, Any] | None = None, config: str = "",
                entry_points: bool = False, journal: bool = True,
                load: list[str] | None = None) -> App:
        text = textwrap.dedent(config)
        cfg, problems = parse(text, tmp_path / "faxflow.toml")
        pm, report = make_manager(extra=(plugins or {}).items(),
                                  entry_points=entry_points or load is not None,
                                  disable=cfg.disabled_plugins, load=load, trace=False)
        app = App(pm=pm, config=cfg, report=report)
        errors = app.load_destination_types()
        problems = [p for p in problems or app.check_config(cfg) if not p.warning]
        if problems or errors:
            raise ConfigError("\n".join([p.format() for p in problems] + errors))
        app.configure(cfg)
        if journal:
            app.journal = SQLiteJournal(tmp_path / "journal.sqlite")
        return app

    return factory


@pytest.fixture
def sample_fax(tmp_path: Path) -> Callable[..., Fax]:
    """Make a Fax from a generated sample document: ``sample_fax(kind="referral", pages=2,
    receiver="+4930123456", sender="+4940987654", topic="t", received=datetime(...),
    csid="ACME", text=["..."], **make_fax_options)`` (see the module docstring)."""
    from faxflow.samples import make_fax
    from faxflow.types import Document, DocumentRef, Fax, Job, Number

    counter = iter(range(1, 1_000_000))

    def factory(kind: str = "invoice", pages: int = 1, receiver: str = "+4989262080440",
                sender: str = "+4940123456", fax_id: str | None = None,
                topic: str = SIM_TOPIC, received: datetime | None = None,
                csid: str | None = None, **options: Any) -> Fax:
        sample = make_fax(kind=kind, pages=pages, **options)
        n = next(counter)
        path = tmp_path / f"sample-{n}.{sample.extension}"
        path.write_bytes(sample.content)
        name = f"{fax_id or n}.{sample.extension}"
        ref = DocumentRef(url=f"http://127.0.0.1/files/{name}", name=name,
                          extension=sample.extension)
        job = Job(id=fax_id or f"sample-{n}", receiver_isdn=Number(receiver, receiver),
                  sender_isdn=Number(sender, sender), fax_page_count=sample.pages,
                  documents=(ref,), date_received=received, sender_fax_id=csid)
        doc = Document(ref=ref, path=path, size=len(sample.content),
                       sha256=hashlib.sha256(sample.content).hexdigest(),
                       content_type=sample.content_type)
        fax = Fax(job=job, topic=topic, documents=[doc])
        fax.scratch["ground_truth"] = sample.page_texts
        fax.scratch["sample_fields"] = sample.fields
        return fax

    return factory


@pytest.fixture
def simulator() -> Iterator[SimulatorServer]:
    """A running simulator on 127.0.0.1 (random port), stopped after the test."""
    from faxflow.simulator import Simulator, SimulatorServer

    sim = Simulator(users={SIM_USER: SIM_PASSWORD}, topics={SIM_TOPIC: SIM_USER}, seed=7)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        yield server
