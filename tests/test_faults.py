"""The worker against a misbehaving Retarus: error statuses, slow answers, dropped connections,
truncated JSON. Nothing is lost, nothing is delivered twice, and the logs say what happened."""

from __future__ import annotations

import logging
from pathlib import Path

import httpx
import pytest
from test_core_e2e import add_faxes, config_text, delivered, env, run_in_thread, sim  # noqa: F401

from faxflow.paths import safe_name
from faxflow.simulator import SimulatorServer


def set_faults(server: SimulatorServer, **faults: object) -> None:
    httpx.post(f"{server.base_url}/_sim/faults", json=faults).raise_for_status()


@pytest.mark.parametrize("faults", [
    {"rate": 0.3, "statuses": [429, 500, 503, 520]},
    {"drop_rate": 0.2},
    {"malformed_rate": 0.2},
    {"latency_ms": 30, "rate": 0.1, "statuses": [503]},
], ids=["statuses", "drops", "malformed", "slow"])
def test_worker_recovers_from_faults(sim: SimulatorServer, env: dict[str, str],  # noqa: F811
                                     tmp_path: Path, faults: dict[str, object],
                                     caplog: pytest.LogCaptureFixture) -> None:
    ids = add_faxes(sim, 40)
    set_faults(sim, **faults)
    config = tmp_path / "faxflow.toml"
    # A short lock: batches whose answer was lost come back quickly.
    config.write_text(config_text(sim.api_url, lock_timeout=2, max_attempts=10))
    with caplog.at_level(logging.WARNING):
        run_in_thread(config, lambda: sim.sim.topic_state("abc123")["acknowledged"] == 40, 120)
    out = Path(env["E2E_OUT"])
    assert delivered(out) == {safe_name(i) + ".pdf" for i in ids}
    assert not (out / "duplicates.log").exists()
    assert not list((tmp_path / "quarantine").rglob("reason.txt"))
    # The logs say what happened (retries are logged by the client at warning level).
    assert any(r.name.startswith("faxflow") and r.levelno >= logging.WARNING
               for r in caplog.records)


def test_retarus_down_for_a_while_then_back(sim: SimulatorServer,  # noqa: F811
                                            env: dict[str, str], tmp_path: Path,  # noqa: F811
                                            caplog: pytest.LogCaptureFixture) -> None:
    ids = add_faxes(sim, 10)
    set_faults(sim, rate=1.0, statuses=[503])
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url))
    import threading
    import time

    def heal() -> None:
        # Heal once the worker has given up on a pull (after the client's own retries).
        deadline = time.monotonic() + 120
        while "pull from topic abc123 failed" not in caplog.text:
            if time.monotonic() > deadline:
                break
            time.sleep(0.1)
        set_faults(sim)

    threading.Thread(target=heal, daemon=True).start()
    with caplog.at_level(logging.ERROR, logger="faxflow.worker"):
        run_in_thread(config, lambda: sim.sim.topic_state("abc123")["acknowledged"] == 10, 60)
    assert delivered(Path(env["E2E_OUT"])) == {safe_name(i) + ".pdf" for i in ids}
    assert "pull from topic abc123 failed" in caplog.text
