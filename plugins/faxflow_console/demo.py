"""`faxflow console demo DIR`: the web console on a finished `faxflow demo`'s journal.

`faxflow demo --console` calls it by name through the command line (the core imports no
plugin): once with `--check` before the demo runs, so a missing console extra is said at
once, then to serve. The demo operator gets a random password and the console a free port;
both are printed, the password is only ever stored as its argon2 hash.
"""

from __future__ import annotations

import secrets
import socket
from pathlib import Path
from typing import Any

import click

from faxflow.demo import demo_env, log_to

from .serve import WEB_PACKAGES, need, serve

TABLE = """
[plugins.console]
listen = "127.0.0.1:{port}"
secret = "${{FAXFLOW_DEMO_CONSOLE_SECRET}}"
[plugins.console.users.demo]
password_hash = "{password_hash}"
role = "operator"
"""
PORT = 8090  # the console's usual port, unless something else has it


def free_port() -> int:
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", PORT))
            return PORT
        except OSError:
            s.bind(("127.0.0.1", 0))
            return int(s.getsockname()[1])


@click.command("demo", hidden=True)
@click.argument("folder", type=click.Path(path_type=Path, file_okay=False, exists=True))
@click.option("--check", is_flag=True, help="Only check that the console can run here.")
def demo(folder: Path, check: bool) -> None:
    """The web console on the journal of the demo in FOLDER until Ctrl-C."""
    need(WEB_PACKAGES, "faxflow demo --console")
    if check:
        return
    from argon2 import PasswordHasher

    from faxflow.app import load_app
    from faxflow.journal import open_journal

    password, port = secrets.token_urlsafe(12), free_port()
    config = folder / "faxflow.toml"
    with config.open("a", encoding="utf-8") as file:
        file.write(TABLE.format(port=port, password_hash=PasswordHasher().hash(password)))
    env = {**demo_env(), "FAXFLOW_DEMO_CONSOLE_SECRET": secrets.token_urlsafe(48)}
    app = load_app(config, env=env)
    app.journal = open_journal("sqlite", folder / "journal.sqlite")

    def ready(settings: Any, bound: int) -> None:
        click.echo(f"\nWeb console: http://127.0.0.1:{bound}/   user: demo   password: "
                   f"{password}")
        click.echo("The corrupt fax waits in its quarantine. Ctrl-C stops the console "
                   f"(log: {folder / 'console.log'}).")

    try:
        with log_to(folder / "console.log"):
            serve(app, config, ready=ready)
    except KeyboardInterrupt:
        pass
    finally:
        app.shutdown()
        app.journal.close()
    click.echo("console stopped")
