"""Pytest fixtures for plugin authors (loaded through the ``pytest11`` entry point).

    def test_my_plugin(faxflow_app_factory, sample_fax):
        app = faxflow_app_factory(plugins={"mine": my_plugin}, config='''
            [plugins.mine]
            greeting = "hi"
        ''')
        fax = sample_fax(kind="invoice")
        decision = app.process_fax(fax)

- `faxflow_app_factory`: a fresh App (own plugin manager) with the core and the plugins you
  give; entry-point plugins only when asked (``entry_points=True``).
- `sample_fax`: a `Fax` whose document is a generated fax (known text in
  ``fax.scratch["ground_truth"]``), written to a temporary folder.
- `simulator`: a running Fax2WSPull simulator on loopback with user ``99999``/``secret`` and
  topic ``abc123``; ``simulator.api_url``, ``simulator.sim.add_fax(...)``.
"""

from __future__ import annotations

import hashlib
import textwrap
from collections.abc import Callable, Iterator
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
                entry_points: bool = False, journal: bool = True) -> App:
        text = textwrap.dedent(config)
        cfg, problems = parse(text, tmp_path / "faxflow.toml")
        pm, report = make_manager(extra=(plugins or {}).items(), entry_points=entry_points,
                                  disable=cfg.disabled_plugins, load=None, trace=False)
        app = App(pm=pm, config=cfg, report=report)
        errors = app.load_destination_types()
        problems = problems or app.check_config(cfg)
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
    receiver="+4930123456", sender="+4940987654", **make_fax_options)``."""
    from faxflow.samples import make_fax
    from faxflow.types import Document, DocumentRef, Fax, Job, Number

    counter = iter(range(1, 1_000_000))

    def factory(kind: str = "invoice", pages: int = 1, receiver: str = "+4989262080440",
                sender: str = "+4940123456", fax_id: str | None = None,
                **options: Any) -> Fax:
        sample = make_fax(kind=kind, pages=pages, **options)
        n = next(counter)
        path = tmp_path / f"sample-{n}.{sample.extension}"
        path.write_bytes(sample.content)
        name = f"{fax_id or n}.{sample.extension}"
        ref = DocumentRef(url=f"http://127.0.0.1/files/{name}", name=name,
                          extension=sample.extension)
        job = Job(id=fax_id or f"sample-{n}", receiver_isdn=Number(receiver, receiver),
                  sender_isdn=Number(sender, sender), fax_page_count=pages, documents=(ref,))
        doc = Document(ref=ref, path=path, size=len(sample.content),
                       sha256=hashlib.sha256(sample.content).hexdigest(),
                       content_type=sample.content_type)
        fax = Fax(job=job, topic=SIM_TOPIC, documents=[doc])
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
