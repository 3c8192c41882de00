"""The health endpoint answers during a real run: /healthz, /readyz, /metrics."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from test_core_e2e import add_faxes, config_text, run_in_thread, sim  # noqa: F401

NAMES = ["faxflow_faxes_pulled_total", "faxflow_faxes_acknowledged_total",
         "faxflow_faxes_quarantined_total", "faxflow_faxes_retried_total",
         "faxflow_deliveries_total", "faxflow_ocr_seconds_per_page",
         "faxflow_in_flight", "faxflow_seconds_since_last_pull"]


def test_metrics_and_probes_during_a_run(sim, env, tmp_path: Path) -> None:  # noqa: F811
    add_faxes(sim, 5)
    config = tmp_path / "faxflow.toml"
    config.write_text(config_text(sim.api_url) + '\n[health]\nlisten = "127.0.0.1:0"\n'
                      "ready_after = 30\n")
    seen: dict[str, httpx.Response] = {}

    def probe() -> bool:
        from faxflow.health import HealthServer  # noqa: F401  (started by the runner)
        done = sim.sim.topic_state("abc123")["acknowledged"] == 5
        port = probe.app.state.get("health_port") if hasattr(probe, "app") else None
        if done and port:
            base = f"http://127.0.0.1:{port}"
            for path in ("/healthz", "/readyz", "/metrics", "/nope"):
                seen[path] = httpx.get(base + path)
        return done and bool(seen)

    run_in_thread(config, probe, 30, on_app=lambda app: setattr(probe, "app", app))
    assert seen["/healthz"].status_code == 200
    assert seen["/readyz"].status_code == 200, seen["/readyz"].text
    assert seen["/readyz"].json()["journal_writable"] is True
    assert seen["/nope"].status_code == 404
    text = seen["/metrics"].text
    for name in NAMES:
        assert name in text, name
    assert 'faxflow_deliveries_total{destination="testdir",outcome="delivered"} 5.0' in text


@pytest.fixture
def env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = tmp_path / "out"
    out.mkdir()
    monkeypatch.setenv("SIM_PASSWORD", "secret")
    monkeypatch.setenv("E2E_OUT", str(out))
    monkeypatch.setenv("FAXFLOW_LOAD_PLUGINS", "")


def test_readyz_fails_without_a_recent_pull(faxflow_app_factory) -> None:  # type: ignore[no-untyped-def]
    from faxflow.health import HealthServer

    app = faxflow_app_factory()
    server = HealthServer(app, "127.0.0.1", 0).start()
    try:
        response = httpx.get(f"http://127.0.0.1:{server.port}/readyz")
        assert response.status_code == 503
        assert response.json()["seconds_since_last_pull"] is None
    finally:
        server.stop()
