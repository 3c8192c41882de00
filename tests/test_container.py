"""The container: Dockerfile lint, a real podman build with a smoke run inside the image, and
compose.yaml agreeing with the config it mounts.

The build needs root, podman, buildah and debootstrap (tests/container_build.sh installs the
missing ones) and Debian's and PyPI's package servers; no Docker engine. First build on a
fresh machine takes about 5 minutes, a re-run about 1-2 minutes. Skip locally with
`pytest -m "not container"`.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import tomllib
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import pg_server as pg
import pytest
import yaml  # type: ignore[import-untyped]

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "tests" / "container_build.sh"
DOCKERFILE = ROOT / "Dockerfile"
TAG = "localhost/faxflow:test"
pg_server, pg_url = pg.pg_server, pg.pg_url
IMAGE_DIRS = ["/var/lib/faxflow/journal", "/var/lib/faxflow/spool",
              "/var/lib/faxflow/quarantine", "/var/lib/faxflow/out"]


def script(*args: str, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{ROOT / '.venv' / 'bin'}:{os.environ.get('PATH', '')}"}
    return subprocess.run(["bash", str(SCRIPT), *args], capture_output=True, text=True,
                          timeout=timeout, env=env, cwd=ROOT)


def broken_copy(tmp_path: Path, old: str, new: str) -> Path:
    text = DOCKERFILE.read_text()
    assert old in text, f"the Dockerfile no longer contains {old!r}; update this test"
    broken = tmp_path / "Dockerfile"
    broken.write_text(text.replace(old, new, 1))
    return broken


# --- lint and build (podman) -------------------------------------------------------------------


@pytest.mark.container
def test_dockerfile_passes_hadolint() -> None:
    result = script("--lint-only")
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.container
def test_lint_rejects_an_apt_install_without_yes_and_no_recommends(tmp_path: Path) -> None:
    good = "apt-get install -y --no-install-recommends python3 python3-venv"
    broken = broken_copy(tmp_path, good, "apt-get install python3 python3-venv")
    result = script("--lint-only", "-f", str(broken))
    assert result.returncode == 1
    assert "DL3014" in result.stdout and "DL3015" in result.stdout, result.stdout


@pytest.mark.container
def test_image_builds_and_runs() -> None:
    """Build the real Dockerfile, then inside the image: faxflow --version through the
    entrypoint, tesseract eng+deu, psycopg, `faxflow demo`, and a worker that OCRs and files
    three faxes from the simulator, passes the image's HEALTHCHECK and stops 0 on SIGTERM."""
    result = script("-t", TAG)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    assert "container OK" in result.stdout
    assert "Traceback" not in output

    image = inspect(TAG)
    config = image["Config"]
    assert config["User"] == "10001:10001"
    assert config["Entrypoint"] == ["/usr/bin/tini", "--", "/usr/local/bin/faxflow-entrypoint"]
    assert config["Cmd"] == ["run", "-c", "/etc/faxflow/faxflow.toml"]
    assert sorted(config["Volumes"]) == sorted(IMAGE_DIRS)
    assert "OMP_THREAD_LIMIT=1" in config["Env"]
    assert image["Healthcheck"]["Test"][0] == "CMD"  # kept: built with --format docker
    labels = config["Labels"]
    assert labels["org.opencontainers.image.title"] == "faxflow"
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.version"] == version, "update ARG VERSION"


@pytest.mark.container
def test_a_failing_run_step_fails_the_build(tmp_path: Path) -> None:
    """Cheap: the bad step comes right after the first FROM, so podman stops within seconds
    (the base image is already there or cached after the build test)."""
    broken = broken_copy(tmp_path, "FROM debian:bookworm-slim AS builder\n",
                         "FROM debian:bookworm-slim AS builder\nRUN exit 3\n")
    result = script("--no-smoke", "-f", str(broken), "-t", "localhost/faxflow:broken")
    assert result.returncode == 1, result.stdout + result.stderr
    assert "podman build failed" in result.stderr


@pytest.mark.container
def test_compose_workers_in_the_image_share_a_postgresql_journal(
        pg_url: str, tmp_path: Path) -> None:
    """compose.yaml's worker service run three times in the image built above, configured
    exactly as compose does (shipped faxflow.toml, *_FILE secrets, PGPASSWORD_FILE), against
    a real PostgreSQL on 127.0.0.1 (buildah shares the host's network): 12 faxes, each
    filed once, all replicas ready and stopping 0 on SIGTERM."""
    buildah = shutil.which("buildah")
    assert buildah, "buildah is installed by container_build.sh"
    exists = subprocess.run(["podman", "image", "exists", TAG], check=False)
    assert exists.returncode == 0, f"{TAG} missing: test_image_builds_and_runs failed"
    parts = urlsplit(pg_url)
    password = parts.password or ""
    no_password = urlunsplit(parts._replace(netloc=f"{parts.username}@{parts.hostname}:"
                                                   f"{parts.port}"))
    env = worker_env()
    assert env["PGPASSWORD_FILE"] == "/run/secrets/pg_password"
    ports = [str(free_port()) for _ in range(4)]
    ctr = subprocess.run([buildah, "from", "--pull-never", TAG], capture_output=True,
                         text=True, check=True).stdout.strip()
    try:
        # The password file goes in the way compose mounts it, readable by the image's user.
        secret = tmp_path / "pg_password"
        secret.write_text(password + "\n")
        secret.chmod(0o444)
        run = [buildah, "run", "--isolation", "chroot",
               "-v", f"{secret}:/run/secrets/pg_password:ro",
               "--env", "TINI_SUBREAPER=1", "--env", f"SIM_PORT={ports[0]}",
               "--env", f"HEALTH_PORTS={' '.join(ports[1:])}", "--env", "FAXES=12",
               "--env", f"FAXFLOW_PG_URL={no_password}",
               "--env", f"PGPASSWORD_FILE={env['PGPASSWORD_FILE']}",
               "--env", f"LEAK_CHECK={password}",
               ctr, "--", "sh", "-c", (ROOT / "tests" / "container_compose_smoke.sh").read_text()]
        result = subprocess.run(run, capture_output=True, text=True, timeout=600)
    finally:
        subprocess.run([buildah, "rm", ctr], capture_output=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr[-6000:]
    assert "each once" in result.stdout and "stopped cleanly" in result.stdout


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def inspect(tag: str) -> dict[str, Any]:
    podman = shutil.which("podman")
    assert podman, "podman is installed by container_build.sh"
    out = subprocess.run([podman, "image", "inspect", tag], capture_output=True, text=True,
                         check=True).stdout
    image: dict[str, Any] = json.loads(out)[0]
    return image


# --- compose.yaml and docker/faxflow.toml (no container needed) -------------------------------


def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "compose.yaml").read_text())
    return data


def worker_env() -> dict[str, str]:
    """The worker's environment as compose gives it (defaults of ${X:-default} applied)."""
    env = compose()["services"]["worker"]["environment"]
    return {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v)) for k, v in env.items()}


def test_compose_runs_three_workers_on_a_postgresql_journal() -> None:
    services = compose()["services"]
    worker = services["worker"]
    assert worker["deploy"]["replicas"] == 3
    assert "postgres" in services
    assert worker["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert all("healthcheck" in s for s in services.values())
    config = tomllib.loads((ROOT / "docker" / "faxflow.toml").read_text())
    assert config["journal"] == {"backend": "postgresql", "url": "${FAXFLOW_PG_URL}"}
    # docker stops a container this long after SIGTERM: longer than faxflow's own grace.
    stop = int(worker["stop_grace_period"].removesuffix("s"))
    assert stop > config["worker"]["grace_period"]


def test_every_variable_the_config_uses_is_given_by_compose() -> None:
    values = json.dumps(tomllib.loads((ROOT / "docker" / "faxflow.toml").read_text()))
    used = set(re.findall(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}", values))
    assert used, "the config takes its secrets from ${VARIABLES}"
    env = worker_env()
    missing = {name for name in used if name not in env and f"{name}_FILE" not in env}
    assert not missing
    secrets = compose()["secrets"]
    for name, value in env.items():
        if name.endswith("_FILE"):
            secret = value.removeprefix("/run/secrets/")
            assert secret in secrets and secret in compose()["services"]["worker"]["secrets"]


def test_the_compose_config_passes_faxflow_check(tmp_path: Path) -> None:
    """The mounted config with the compose environment, secrets read from the demo files the
    way docker/entrypoint.sh reads them."""
    env = {**os.environ, **worker_env()}
    for name in [n for n in env if n.endswith("_FILE") and n in worker_env()]:
        secret = Path(env.pop(name)).name
        demo = ROOT / "docker" / "demo-secrets" / secret
        env[name.removesuffix("_FILE")] = demo.read_text().rstrip("\n")
    result = subprocess.run([str(ROOT / ".venv" / "bin" / "faxflow"), "check", "-c",
                             str(ROOT / "docker" / "faxflow.toml")],
                            capture_output=True, text=True, env=env, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Traceback" not in result.stderr


def test_compose_console_shares_the_config_and_signs_in_with_the_demo_secrets() -> None:
    """The console service: the workers' configuration and journal, its port on loopback
    only, and with the demo secrets a secret and an admin who can sign in (the password the
    compose file names)."""
    from argon2 import PasswordHasher
    from faxflow_console.settings import parse, startup_problems

    from faxflow.config import read

    services = compose()["services"]
    console = services["console"]
    assert console["command"] == ["console", "-c", "/etc/faxflow/faxflow.toml"]
    assert console["volumes"][0] == services["worker"]["volumes"][0]
    assert console["ports"] == ["127.0.0.1:8090:8090"]
    assert "8090/healthz" in " ".join(console["healthcheck"]["test"])
    env = {k: re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", str(v))
           for k, v in console["environment"].items()}
    assert {k: v for k, v in env.items() if k in worker_env()} == {
        k: v for k, v in worker_env().items() if k in env}  # the same journal and Retarus
    for name in [n for n in env if n.endswith("_FILE")]:
        secret = Path(env.pop(name)).name
        assert secret in console["secrets"] and secret in compose()["secrets"]
        env[name.removesuffix("_FILE")] = (ROOT / "docker" / "demo-secrets" / secret
                                           ).read_text().rstrip("\n")
    config, problems = read(ROOT / "docker" / "faxflow.toml", env)
    assert not problems
    settings, problems = parse(config.plugin_options("console"))
    assert not problems and not startup_problems(settings)
    assert settings.listen == "0.0.0.0:8090" and settings.users["admin"].role == "operator"
    assert PasswordHasher().verify(settings.users["admin"].password_hash,
                                   "faxflow-demo-console")
    assert "faxflow-demo-console" in (ROOT / "compose.yaml").read_text()
    # The workers get none of the console's secrets.
    assert "console_secret" not in services["worker"]["secrets"]


def test_entrypoint_turns_secret_files_into_variables(tmp_path: Path) -> None:
    """docker/entrypoint.sh with a stand-in `faxflow` that prints its environment."""
    (tmp_path / "faxflow").write_text('#!/bin/sh\necho "args=$*"\nenv\n')
    (tmp_path / "faxflow").chmod(0o755)
    secret = tmp_path / "password"
    secret.write_text("s3cret value\n")
    env = {"PATH": f"{tmp_path}:/usr/bin:/bin", "RETARUS_PASSWORD_FILE": str(secret)}
    entry = str(ROOT / "docker" / "entrypoint.sh")
    result = subprocess.run(["sh", entry, "run", "-c", "x.toml"], capture_output=True,
                            text=True, env=env, timeout=30)
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert "args=run -c x.toml" in lines
    assert "RETARUS_PASSWORD=s3cret value" in lines
    assert not any(line.startswith("RETARUS_PASSWORD_FILE=") for line in lines)

    both = subprocess.run(["sh", entry], capture_output=True, text=True, timeout=30,
                          env={**env, "RETARUS_PASSWORD": "x"})
    assert both.returncode == 2 and "set only one" in both.stderr
    missing = subprocess.run(["sh", entry], capture_output=True, text=True, timeout=30,
                             env={**env, "RETARUS_PASSWORD_FILE": str(tmp_path / "nope")})
    assert missing.returncode == 2 and "cannot read" in missing.stderr
    assert "s3cret" not in both.stderr + missing.stderr
