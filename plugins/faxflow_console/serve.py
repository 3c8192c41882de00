"""`faxflow console -c FILE` (the web console) and `faxflow console hash-password`.

The console is one process: the configured app with its journal open (as `faxflow
quarantine` has it), the configuration reloaded when the file changes (`[worker] reload`),
and uvicorn serving web.py. Its own access log is a line per request with the path only
(opaque numbers, never a query string); uvicorn's access log stays off, as query strings
would land in it.
"""

from __future__ import annotations

import importlib.util
import logging
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from faxflow.app import App

from .cli import opened
from .settings import Settings, startup_problems

log = logging.getLogger("faxflow.console")
# import name -> what pip installs; all come with `pip install 'faxflow[console]'`
WEB_PACKAGES = {"starlette": "starlette", "uvicorn": "uvicorn",
                "python_multipart": "python-multipart", "itsdangerous": "itsdangerous",
                "argon2": "argon2-cffi"}


def missing(names: dict[str, str]) -> list[str]:
    found = []
    for module, package in names.items():
        try:
            present = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            present = False
        if module == "python_multipart" and not present:  # older releases' import name
            present = importlib.util.find_spec("multipart") is not None
        if not present:
            found.append(package)
    return found


def need(names: dict[str, str], what: str) -> None:
    lacking = missing(names)
    if lacking:
        raise click.ClickException(
            f"{what} needs the console extra, which is not installed here: "
            f"pip install 'faxflow[console]' (missing: {', '.join(lacking)})")


@click.group("console", invoke_without_command=True)
@click.option("-c", "--config", "config_path", envvar="FAXFLOW_CONFIG",
              type=click.Path(path_type=Path, dir_okay=False),
              help="The TOML configuration file [env FAXFLOW_CONFIG].")
@click.pass_context
def console(ctx: click.Context, config_path: Path | None) -> None:
    """The web console: faxes, their timelines, the quarantine and its actions.

    Serves on [plugins.console] listen (127.0.0.1:8090 unless set) until Ctrl-C or SIGTERM.
    Needs the console extra: pip install 'faxflow[console]'. See docs/console.md.
    """
    if ctx.invoked_subcommand is not None:
        return
    if config_path is None:
        raise click.UsageError("Missing option '-c' / '--config' (the configuration file).")
    need(WEB_PACKAGES, "faxflow console")
    with opened(config_path) as app:
        serve(app, config_path)


def serve(app: App, config_path: Path | None,
          ready: Callable[[Settings, int], None] | None = None) -> None:
    """Run the console for `app` (journal open) until interrupted. `ready(settings, port)`
    is called once it listens."""
    from . import SETTINGS
    from .web import build

    settings = app.stash[SETTINGS].settings
    problems = startup_problems(settings)
    if problems:
        where = str(config_path or "config")
        raise click.ClickException("\n".join(f"{where}: plugins.console.{p}"
                                             for p in problems))
    reloader = None
    if config_path is not None and app.config.worker.reload:
        from faxflow.reload import Reloader

        reloader = Reloader(app, config_path)
        reloader.start()
    asgi, _ = build(app)
    host, port = settings.address
    server = server_for(asgi, host, port)
    try:
        app.startup()
        if ready is not None:
            import threading

            def announce() -> None:
                while not server.started and not server.should_exit:
                    threading.Event().wait(0.05)
                if server.started:
                    bound = server.servers[0].sockets[0].getsockname()[1] \
                        if server.servers else port
                    ready(settings, int(bound))

            threading.Thread(target=announce, daemon=True, name="console-ready").start()
        log.info("web console on http://%s:%d%s/ (public address: %s)",
                 host if ":" not in host else f"[{host}]", port, settings.prefix,
                 settings.base_url or "not set")
        server.run()
    finally:
        if reloader is not None:
            reloader.stop()
    if not server.started:
        raise click.ClickException(f"the console could not listen on {settings.listen} "
                                   "(see the log above)")


def server_for(asgi: Any, host: str, port: int) -> Any:
    """A uvicorn server for the console: its access log off for good (it would log query
    strings), no Server header, the client address as the TCP peer (X-Forwarded-For is
    read by the console itself, and only from trusted proxies)."""
    import uvicorn

    config = uvicorn.Config(asgi, host=host, port=port, log_config=None, access_log=False,
                            proxy_headers=False, server_header=False, lifespan="off",
                            timeout_graceful_shutdown=5)
    logging.getLogger("uvicorn.access").disabled = True
    return uvicorn.Server(config)


@console.command("hash-password")
def hash_password() -> None:
    """Make a password_hash for [plugins.console.users.<name>] (argon2id).

    Asks for the password twice without showing it; from a pipe, reads one line.
    """
    need({"argon2": "argon2-cffi"}, "faxflow console hash-password")
    from argon2 import PasswordHasher

    if sys.stdin.isatty():
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True,
                                err=True)
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if len(password) < 10:
        raise click.ClickException("use a password of at least 10 characters")
    click.echo(PasswordHasher().hash(password))
