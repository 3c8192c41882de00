"""`faxflow demo`: the whole loop on one machine, with no account anywhere.

Starts the built-in simulator with generated sample faxes, pulls them with the client and
prints what arrived, then acknowledges them.
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import click

from faxflow.retarus import RetarusClient
from faxflow.simulator import Simulator, SimulatorServer, preload_samples


@click.command("demo")
@click.option("--faxes", default=5, show_default=True, type=click.IntRange(1, 500),
              help="Sample faxes to put into the simulator.")
def demo_command(faxes: int) -> None:
    """Run faxflow against the built-in simulator with sample faxes."""
    sim = Simulator(users={"99999": "demo-password"}, topics={"demo": "99999"}, seed=1)
    with SimulatorServer(sim, host="127.0.0.1", port=0) as server:
        preload_samples(sim, faxes)
        click.echo(f"simulator listening on {server.base_url} with {faxes} fax(es)")
        with RetarusClient("99999", "demo-password", base_url=server.api_url) as client, \
                tempfile.TemporaryDirectory(prefix="faxflow-demo-") as tmp:
            acks: list[str] = []
            while True:
                batch = client.pull("demo", fetch=10, timeout=60, ack_ids=acks)
                if not batch.jobs:
                    break
                acks = []
                for job in batch.jobs:
                    sender = job.sender_isdn.e164 if job.sender_isdn else "?"
                    receiver = job.receiver_isdn.e164 if job.receiver_isdn else "?"
                    for i, ref in enumerate(job.documents):
                        doc = client.download(ref, Path(tmp) / f"{len(acks)}-{i}.{ref.extension}")
                        click.echo(f"fax {job.id}: from {sender} to {receiver}, "
                                   f"{job.fax_page_count or '?'} page(s), {doc.size} bytes "
                                   f"{doc.content_type}, sha256 {doc.sha256[:12]}")
                    acks.append(job.id)
        click.echo(f"all faxes pulled and acknowledged: {sim.topic_state('demo')}")
