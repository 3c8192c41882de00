"""A local Fax2WSPull (Retarus inbound fax pull API) simulator for tests and demos.

    from faxflow.simulator import Simulator, SimulatorServer
    sim = Simulator(users={"99999": "secret"}, topics={"abc123": "99999"})
    sim.add_fax("abc123")
    with SimulatorServer(sim) as server:
        ...  # server.api_url is the API base

The contract it implements is docs/simulator.md (and /work/shared/fax2wspull.md).
"""

from __future__ import annotations

from collections.abc import Sequence

import click

from faxflow.simulator.minipdf import one_page_pdf
from faxflow.simulator.server import SimulatorServer
from faxflow.simulator.store import (
    BadRequest,
    Conflict,
    NotFound,
    Simulator,
    SimulatorError,
    file_name,
)

__all__ = [
    "BadRequest",
    "Conflict",
    "NotFound",
    "Simulator",
    "SimulatorError",
    "SimulatorServer",
    "file_name",
    "main",
    "preload_samples",
    "simulator_command",
]


def preload_samples(sim: Simulator, per_topic: int) -> None:
    """Add `per_topic` faxes, each a generated 1-page PDF, to every topic."""
    for topic in sim.topic_names():
        for number in range(1, per_topic + 1):
            pdf = one_page_pdf(f"Sample fax {number} of {per_topic} for topic {topic}")
            sim.add_fax(topic, documents=[{"extension": "pdf", "content": pdf}])


def _split(value: str, sep: str, option: str) -> tuple[str, str]:
    left, found, right = value.partition(sep)
    if not found or not left:
        raise click.BadParameter(f"expected {option}, got {value!r}")
    return left, right


@click.command("simulator")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option(
    "--port", default=8080, show_default=True, type=click.IntRange(0, 65535),
    help="Port to listen on; 0 picks a free one.",
)
@click.option("--user", "users", multiple=True, metavar="USER:PASSWORD",
              help="A customer number and its password (repeatable).")
@click.option("--topic", "topics", multiple=True, metavar="TOPIC=USER",
              help="A topic and the customer that owns it (repeatable).")
@click.option("--samples", default=0, show_default=True, type=click.IntRange(0),
              help="Faxes to preload into every topic.")
@click.option("--seed", type=int, default=None, help="Seed for ids, fields and faults.")
def simulator_command(
    host: str, port: int, users: tuple[str, ...], topics: tuple[str, ...], samples: int,
    seed: int | None,
) -> None:
    """Run a local Fax2WSPull simulator until SIGINT or SIGTERM."""
    sim = Simulator(seed=seed)
    for entry in users:
        sim.add_user(*_split(entry, ":", "USER:PASSWORD"))
    for entry in topics:
        topic, owner = _split(entry, "=", "TOPIC=USER")
        try:
            sim.add_topic(topic, owner)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--topic") from None
    server = SimulatorServer(sim, host=host, port=port)

    def listening(server: SimulatorServer) -> None:
        preload_samples(sim, samples)  # after start, so document URLs carry the real port
        print(f"listening on {server.base_url}", flush=True)

    try:
        server.serve_until_signal(on_listening=listening)
    except OSError as exc:  # e.g. the port is taken
        raise click.ClickException(f"cannot listen on {host}:{port}: {exc}") from None


def main(argv: Sequence[str] | None = None) -> None:
    """Entry point: `python -m faxflow.simulator --user 99999:secret --topic abc123=99999`."""
    simulator_command.main(
        args=list(argv) if argv is not None else None, prog_name="faxflow simulator"
    )
