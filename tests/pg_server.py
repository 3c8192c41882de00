"""A real PostgreSQL server for the tests: initdb into a temp dir, listening on 127.0.0.1 on a
free port only, a database and a user with a password; stopped at the end of the session.

The binaries come from Debian's `postgresql` package (/usr/lib/postgresql/<version>/bin), or
from $FAXFLOW_PG_BINDIR. If they are missing the tests are skipped, except in CI (CI=true),
where they fail.
"""

from __future__ import annotations

import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

USER = "faxflow"
SUPERUSER = "postgres"


def find_bindir() -> Path | None:
    """$FAXFLOW_PG_BINDIR if set, else the newest /usr/lib/postgresql/*/bin with initdb,
    else initdb on PATH."""
    chosen = os.environ.get("FAXFLOW_PG_BINDIR")
    if chosen:
        return Path(chosen) if (Path(chosen) / "initdb").exists() else None
    versions = []
    for initdb in Path("/usr/lib/postgresql").glob("*/bin/initdb"):
        version = initdb.parent.parent.name
        if version.isdigit():
            versions.append((int(version), initdb.parent))
    if versions:
        return max(versions)[1]
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass
class PgServer:
    bindir: Path
    base: Path  # owned by the server's OS user; holds data/, the socket and the log
    port: int
    password: str
    as_postgres: list[str]  # prefix that runs a command as the server's OS user

    @property
    def data(self) -> Path:
        return self.base / "data"

    @property
    def log(self) -> Path:
        return self.base / "server.log"

    def url(self, dbname: str = "faxflow") -> str:
        return f"postgresql://{USER}:{self.password}@127.0.0.1:{self.port}/{dbname}"

    def _ctl(self, *args: str) -> None:
        cmd = [*self.as_postgres, str(self.bindir / "pg_ctl"), "-D", str(self.data),
               "-l", str(self.log), "-w", "-t", "60", *args]
        result = subprocess.run(cmd, capture_output=True, text=True, timeout=90)
        if result.returncode != 0:
            tail = self.log.read_text()[-2000:] if self.log.exists() else ""
            raise RuntimeError(f"pg_ctl {args[0]} failed: {result.stdout}{result.stderr}\n{tail}")

    def start(self) -> None:
        self._ctl("start", "-o", f"-k {self.base} -c listen_addresses=127.0.0.1 "
                  f"-p {self.port} -c fsync=off -c full_page_writes=off")

    def stop(self) -> None:
        self._ctl("stop", "-m", "fast")

    def restart(self) -> None:
        self._ctl("restart", "-m", "fast")

    def admin(self, sql: str, dbname: str = "postgres") -> None:
        """Run SQL as the superuser over the unix socket (trusted)."""
        import psycopg

        with psycopg.connect(host=str(self.base), port=self.port, user=SUPERUSER,
                             dbname=dbname, autocommit=True) as conn:
            conn.execute(sql.encode())

    def create_schema(self, name: str) -> str:
        """A fresh schema in the faxflow database; the URL puts it first on the search path
        (cheaper than a database per test)."""
        self.admin(f"CREATE SCHEMA {name} AUTHORIZATION {USER}", USER)
        return f"{self.url()}?options=-csearch_path%3D{name}"


def start_server() -> PgServer:
    bindir = find_bindir()
    if bindir is None:
        raise FileNotFoundError("PostgreSQL server binaries (initdb, pg_ctl) not found: "
                                "apt-get install postgresql")
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root
        as_postgres = ["runuser", "-u", "postgres", "--"]
    base = Path(tempfile.mkdtemp(prefix="faxflow-pg-"))
    if as_postgres:
        shutil.chown(base, "postgres", "postgres")
    password = secrets.token_urlsafe(16)
    pwfile = base / "pw"
    pwfile.write_text(password + "\n")
    if as_postgres:
        shutil.chown(pwfile, "postgres", "postgres")
    server = PgServer(bindir, base, free_port(), password, as_postgres)
    subprocess.run([*as_postgres, str(bindir / "initdb"), "-D", str(server.data),
                    "-U", SUPERUSER, "--auth-local=trust", "--auth-host=scram-sha-256",
                    f"--pwfile={pwfile}", "-E", "UTF8", "--no-sync"],
                   check=True, capture_output=True, timeout=120)
    pwfile.unlink()
    server.start()
    server.admin(f"CREATE ROLE {USER} LOGIN PASSWORD '{password}'")
    server.admin(f"CREATE DATABASE {USER} OWNER {USER}")
    return server


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    if find_bindir() is None:
        message = ("PostgreSQL server binaries not found (Debian: apt-get install postgresql); "
                   "the PostgreSQL journal tests need a real server")
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        message = "psycopg is not installed: pip install -e '.[postgresql]'"
        if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
            pytest.fail(message)
        pytest.skip(message)
    # Each test module that imports this fixture gets its own copy of it; they share one
    # server, stopped when the last of them ends (all at the end of the session).
    if _shared["server"] is None:
        _shared["server"] = start_server()
    _shared["users"] += 1
    server = _shared["server"]
    try:
        yield server
    finally:
        _shared["users"] -= 1
        if _shared["users"] == 0:
            _shared["server"] = None
            try:
                server.stop()
            finally:
                shutil.rmtree(server.base, ignore_errors=True)


_shared: dict[str, Any] = {"server": None, "users": 0}


_counter = iter(range(1_000_000))


@pytest.fixture
def pg_url(pg_server: PgServer) -> str:
    """The URL of a fresh, empty schema for one test."""
    return pg_server.create_schema(f"t{next(_counter)}_{secrets.token_hex(3)}")
