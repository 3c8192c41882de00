"""The TOML configuration: parsing, secrets, validation with file/line/key, the core's schema.

The core validates its own tables (`[retarus]`, `[worker]`, `[journal]`, `[health]`,
`[plugins]`); plugins validate theirs through `faxflow_check_config`. A problem names its key
path; `Config.locate` finds the line, since tomllib reports lines only for syntax errors.
"""

from __future__ import annotations

import dataclasses
import json
import os
import re
import tomllib
import types
import typing
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from faxflow.errors import ConfigError

# What plugins use (docs/api.md); the rest of the module is the core's.
__all__ = [
    "Config",
    "ConfigProblem",
    "KeyPath",
    "as_problems",
]

REGIONS = ("de1", "de2", "us1", "us2", "ch1", "sg1")
SECRET_WORDS = ("password", "token", "secret", "api_key", "apikey")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")

KeyPath = tuple[str | int, ...]
"""Where a key is in the TOML file: table names and array indexes, e.g.
``("plugins", "folder", "path")``, or ``("rule", 2, "route", 0, "type")`` for the ``type`` of
the first ``[[rule.route]]`` of the third ``[[rule]]``."""


def is_secret_key(name: str) -> bool:
    lowered = name.lower()
    return any(word in lowered for word in SECRET_WORDS)


def format_path(path: KeyPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


@dataclass(frozen=True, slots=True)
class ConfigProblem:
    """One thing wrong with a config file: where (key path) and what.

    What `faxflow_check_config` returns. `path` is the `KeyPath` of the key at fault, e.g.
    ``("plugins", "myplugin", "url")``; the core finds `line` and adds the file name. Keep
    `message` short, saying what is expected (``"required"``, ``"must be a string"``).
    ``warning=True`` reports it without rejecting the file (e.g. an option without effect).
    """

    path: KeyPath
    message: str
    line: int | None = None
    warning: bool = False  # reported, but the file is still accepted

    def format(self, file: str | None = None) -> str:
        """The problem as ``faxflow check`` prints it, e.g.
        ``faxflow.toml:12: plugins.folder.path: required`` (``warning`` follows the line
        number for a warning; `file` defaults to ``config``)."""
        where = file or "config"
        if self.line:
            where += f":{self.line}"
        if self.warning:
            where += ": warning"
        key = format_path(self.path)
        return f"{where}: {key}: {self.message}" if key else f"{where}: {self.message}"


def as_problems(result: Any, base: KeyPath, who: str) -> list[ConfigProblem]:
    """What a plugin's check returned, as problems. The one way for every check a plugin
    writes (`faxflow_check_config`, `DestinationType.check_options`): return `ConfigProblem`
    objects, or ``"key: message"`` strings whose key (dotted for deeper keys) is relative to
    `base` (the plugin's ``[plugins.<name>]`` table, or the route), or None for none. Anything
    else is reported as a problem of `who` rather than crashing the check."""
    if result is None:
        return []
    items = [result] if isinstance(result, str | ConfigProblem) else result
    try:
        items = list(items)
    except TypeError:
        return [ConfigProblem(base, f"{who} returned {type(result).__name__}, not a list "
                                    "of problems")]
    out: list[ConfigProblem] = []
    for item in items:
        if isinstance(item, ConfigProblem):
            out.append(item)
        elif isinstance(item, str):
            key, found, message = item.partition(": ")
            if found and re.fullmatch(r"[\w\-]+(\.[\w\-]+)*", key.strip()):
                out.append(ConfigProblem((*base, *key.strip().split(".")), message))
            else:
                out.append(ConfigProblem(base, item))
        else:
            out.append(ConfigProblem(base, f"{who} returned {item!r} as a problem (expected a "
                                           "ConfigProblem or a 'key: message' string)"))
    return out


def errors(problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    """The problems that reject a file (not the warnings)."""
    return [p for p in problems if not p.warning]


def by_line(problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    """Problems in file order (those without a line first), errors before warnings on a line."""
    return sorted(problems, key=lambda p: (p.line or 0, p.warning))


# --- The core's own settings; the dataclasses are the schema (docs are generated from them) --


def _opt(default: Any, help: str, **extra: Any) -> Any:
    return field(default=default, metadata={"help": help, **extra})


@dataclass(frozen=True)
class RetarusSettings:
    region: str | None = _opt(None, "Retarus data centre: de1, de2, us1, us2, ch1 or sg1.",
                              choices=REGIONS)
    base_url: str | None = _opt(None, "Explicit API base URL instead of a region (e.g. the "
                                "simulator's http://127.0.0.1:8080/faxin/rest/v1).")
    username: str = _opt("", "Retarus customer number.", required=True)
    password: str = _opt("", "Password; use ${ENV_VAR} or password_file, never a literal.",
                         required=True)
    topics: list[str] = field(default_factory=list, metadata={
        "help": "Topics to pull from (at least one).", "required": True})
    fetch: int = _opt(10, "Most jobs asked for in one pull (also capped by free slots).",
                      min=1, max=100)
    lock_timeout: int = _opt(600, "Seconds a handed-out fax stays locked; must cover the worst "
                             "processing time of one fax.", min=1)
    timeout: float = _opt(30.0, "HTTP timeout in seconds for one request.", min=0.1)
    max_download_bytes: int = _opt(200_000_000, "Largest document accepted.", min=1)
    allow_http: bool = _opt(False, "Allow a plain http:// base_url to a host other than "
                            "loopback (e.g. a simulator on a private network). The password "
                            "then travels in clear text: never for Retarus itself.")


@dataclass(frozen=True)
class WorkerSettings:
    concurrency: int = _opt(4, "Faxes processed at the same time.", min=1, max=256)
    spool_dir: str = _opt("spool", "Where documents are downloaded; cleaned after ack.")
    quarantine_dir: str = _opt("quarantine", "A folder the quarantine is also exported to "
                               "(documents, metadata.json, reason.txt, text.txt); \"\": no "
                               "export. The quarantine itself is kept in the journal, shared by "
                               "all workers.")
    max_attempts: int = _opt(5, "Attempts before a fax is quarantined.", min=1)
    retry_for: float = _opt(0.0, "Keep retrying a fax that fails transiently (a destination "
                            "down) past max_attempts until it is this many seconds old (by "
                            "its dateReceived); 0: off. Retarus deletes faxes after 7 days.",
                            min=0.0, max=6 * 86400.0)
    poll_interval_max: float = _opt(30.0, "Longest wait between pulls when the topic is empty.",
                                    min=0.0)
    grace_period: float = _opt(60.0, "Seconds in-flight faxes get to finish on SIGTERM.",
                               min=0.0)
    reload: bool = _opt(True, "Watch the config file and reload it when it changes.")
    file_mode: str = _opt("0600", "Permissions of the files faxflow writes (spool, quarantine, "
                          "journal, OCR cache; delivered files unless [plugins.folder] says "
                          "otherwise): owner-only, as fax contents are personal data. \"0640\" "
                          "gives the group read access.", pattern=r"^0?[0-7]{3}$",
                          pattern_help="an octal mode such as \"0600\" or \"0640\"")
    dir_mode: str = _opt("0700", "Permissions of the folders faxflow creates; \"0750\" gives "
                         "the group access.", pattern=r"^0?[0-7]{3}$",
                         pattern_help="an octal mode such as \"0700\" or \"0750\"")
    unreadable_pages: str = _opt(
        "quarantine", "A fax with a page that could not be read (render or OCR failure, too "
        "large, timed out): quarantine (the reason names document and page), or label: it "
        "goes on with the label unreadable-pages, for a rule to route it to people "
        "(docs/rules.md).", choices=("quarantine", "label"))


@dataclass(frozen=True)
class JournalSettings:
    backend: str = _opt("sqlite", "sqlite or postgresql.", choices=("sqlite", "postgresql"))
    path: str = _opt("faxflow.sqlite", "SQLite file (backend sqlite).")
    url: str | None = _opt(None, "PostgreSQL conninfo (backend postgresql); use ${ENV_VAR}.")
    retention_days: int = _opt(90, "Days a fax's record, timeline and resolved quarantine "
                               "item are kept (personal data: keep it short); open quarantine "
                               "items are kept until resolved. At least 8: Retarus may hand a "
                               "fax out again for 7 days.", min=8, max=3650)


@dataclass(frozen=True)
class HealthSettings:
    listen: str | None = _opt(None, "host:port for /healthz, /readyz and /metrics; off if unset. "
                              "Keep it on 127.0.0.1 unless a probe from outside the container "
                              "needs it; never expose it publicly (operations.md, Health "
                              "checks).",
                              pattern=r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9.-]*):\d{1,5}$",
                              pattern_help="host:port")
    ready_after: float = _opt(300.0, "Seconds since the last successful pull before /readyz "
                              "fails.", min=1.0)


CORE_SECTIONS: dict[str, type] = {
    "retarus": RetarusSettings,
    "worker": WorkerSettings,
    "journal": JournalSettings,
    "health": HealthSettings,
}


@dataclass
class Config:
    """A parsed, secret-resolved configuration file.

    What `faxflow_check_config` and `faxflow_configure` receive, and ``app.config``. For
    plugins: `plugin_options` (your ``[plugins.<name>]`` table), `resolve` (a path option,
    relative to the file), `file_mode` and `dir_mode` (for what you write), and the core's typed
    settings `retarus`, `worker`, `journal` and `health` (their options are in
    [configuration.md](configuration.md), e.g. ``config.worker.spool_dir``).

    `path` is the file read: None for a configuration made from text (tests) or without a
    file. `data` is the whole file as parsed, ``${VAR}`` references and ``*_file`` secrets
    substituted, for the top-level tables a plugin claims with `faxflow_config_sections`
    (``config.data.get("rule", [])``). `text` is the file as written (for line numbers) and
    `files` the secret files it names (a reload watches them too). Secrets are in `data` and
    in options in clear: never log them whole.
    """

    data: dict[str, Any]
    path: Path | None = None
    text: str = ""
    files: list[Path] = field(default_factory=list)  # secret files it names (*_file)
    retarus: RetarusSettings = field(default_factory=RetarusSettings)
    worker: WorkerSettings = field(default_factory=WorkerSettings)
    journal: JournalSettings = field(default_factory=JournalSettings)
    health: HealthSettings = field(default_factory=HealthSettings)

    @property
    def file_mode(self) -> int:
        """`[worker] file_mode` as a number (0o600 by default)."""
        return int(self.worker.file_mode, 8)

    @property
    def dir_mode(self) -> int:
        """`[worker] dir_mode` as a number (0o700 by default), for folders faxflow creates."""
        return int(self.worker.dir_mode, 8)

    def plugin_options(self, name: str) -> dict[str, Any]:
        """The ``[plugins.<name>]`` table, or an empty dict.

        ``${VAR}`` references and ``*_file`` secrets are substituted; nothing else is checked
        but what your `faxflow_check_config` checks."""
        table = self.data.get("plugins", {}).get(name, {})
        return table if isinstance(table, dict) else {}

    @property
    def disabled_plugins(self) -> list[str]:
        """The plugin names in ``[plugins] disable`` (not loaded)."""
        value = self.data.get("plugins", {}).get("disable", [])
        return [str(v) for v in value] if isinstance(value, list) else []

    def resolve(self, relative: str) -> Path:
        """A path from the config, relative to the config file's folder.

        ``~`` is expanded and an absolute path kept; without a file (`path` None) a relative
        path stays relative to the working directory. Use it for every path option, so a
        configuration works wherever the worker is started from."""
        p = Path(relative).expanduser()
        if not p.is_absolute() and self.path is not None:
            p = self.path.parent / p
        return p

    def locate(self, path: KeyPath) -> int | None:
        """Best-effort line number (1-based) of a key path in `text`, None if not found; how
        the core adds lines to problems."""
        return locate(self.text, path)

    def __repr__(self) -> str:  # never show secrets
        return f"Config(path={self.path!s})"


def locate(text: str, path: KeyPath) -> int | None:
    """Best-effort line number (1-based) of a key path in TOML text.

    Understands `[a.b]` and `[[a]]` headers, also nested arrays of tables (`[[rule.route]]`
    belongs to the latest `[[rule]]`), and `key = ...` lines; returns the deepest line found,
    so a missing key points at its table.
    """
    if not path:
        return None
    best: int | None = None
    header: KeyPath = ()
    counts: dict[KeyPath, int] = {}  # array of tables (with parent indices) -> entries seen

    def resolve(names: list[str]) -> KeyPath:
        out: KeyPath = ()
        for name in names:
            out = (*out, name)
            if out in counts:  # an array of tables: we are inside its latest entry
                out = (*out, counts[out] - 1)
        return out

    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if line.startswith("[["):
            names = [p.strip().strip('"') for p in line[2:].split("]]")[0].split(".")]
            array = (*resolve(names[:-1]), names[-1])
            index = counts.get(array, 0)
            counts[array] = index + 1
            header = (*array, index)
        elif line.startswith("["):
            header = resolve([p.strip().strip('"') for p in line[1:].split("]")[0].split(".")])
        elif "=" in line and not line.startswith("#"):
            key = line.split("=", 1)[0].strip().strip('"')
            full = (*header, *key.split("."))
            if full and full == path[: len(full)]:
                return number
            continue
        else:
            continue
        if header and header == path[: len(header)]:
            best = number
    return best


# --- Loading --------------------------------------------------------------------------------


def _substitute(value: Any, path: KeyPath, env: Mapping[str, str],
                problems: list[ConfigProblem], base: Path | None,
                files: list[Path] | None = None) -> Any:
    """Fill ${ENV} references and read *_file secrets (their paths go to `files`),
    recursively."""
    files = [] if files is None else files
    if isinstance(value, str):
        def repl(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            if name in env and (env[name] or default is None):
                return env[name]
            if default is not None:  # ${NAME:-default}: unset or empty
                return default
            problems.append(ConfigProblem(path, f"environment variable {name} is not set"))
            return ""
        return _ENV_REF.sub(repl, value)
    if isinstance(value, list):
        return [_substitute(v, (*path, i), env, problems, base, files)
                for i, v in enumerate(value)]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            out[key] = _substitute(item, (*path, key), env, problems, base, files)
        for key in list(out):
            stem = key.removesuffix("_file")
            if key.endswith("_file") and is_secret_key(stem) and isinstance(out[key], str):
                if stem in out:
                    problems.append(ConfigProblem((*path, key), f"give {stem} or {key}, not both"))
                    continue
                file = Path(out.pop(key)).expanduser()
                if base is not None and not file.is_absolute():
                    file = base / file
                files.append(file)
                try:
                    out[stem] = file.read_text(encoding="utf-8").strip()
                except OSError as exc:
                    problems.append(ConfigProblem((*path, key),
                                                  f"cannot read secret file: {exc.strerror}"))
        return out
    return value


def _type_ok(value: Any, hint: Any) -> bool:
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return any(_type_ok(value, arg) for arg in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if origin is list:
        (item,) = typing.get_args(hint)
        return isinstance(value, list) and all(_type_ok(v, item) for v in value)
    if hint is float:
        return isinstance(value, int | float) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def _from_text(value: Any, hint: Any) -> Any:
    """A number or true/false written as text (as ``"${CONCURRENCY}"`` from the environment
    must be) for an option of that type; anything else is returned unchanged."""
    if not isinstance(value, str) or _type_ok(value, hint):
        return value
    text = value.strip()
    if _type_ok(True, hint) and text.lower() in ("true", "false"):
        return text.lower() == "true"
    for kind in (int, float):
        if _type_ok(kind(0), hint):
            try:
                return kind(text)
            except ValueError:
                continue
    return value


def _type_name(hint: Any) -> str:
    names = {str: "a string", int: "an integer", float: "a number", bool: "true or false"}
    origin = typing.get_origin(hint)
    if origin in (types.UnionType, typing.Union):
        return " or ".join(_type_name(a) for a in typing.get_args(hint) if a is not type(None))
    if origin is list:
        return "a list of strings"
    return names.get(hint, str(hint))


def build_section(cls: type, table: Any, path: KeyPath,
                  problems: list[ConfigProblem], present: bool = True) -> Any:
    """Validate one core table against its dataclass and build it (defaults where invalid)."""
    if not isinstance(table, dict):
        problems.append(ConfigProblem(path, "must be a table"))
        return cls()
    hints = typing.get_type_hints(cls)
    known = {f.name: f for f in dataclasses.fields(cls)}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in known:
            hint = _suggest(key, known)
            problems.append(ConfigProblem((*path, key), "unknown option" + hint))
            continue
        meta = known[key].metadata
        value = _from_text(value, hints[key])
        if not _type_ok(value, hints[key]):
            problems.append(ConfigProblem((*path, key), f"must be {_type_name(hints[key])}"))
            continue
        if "choices" in meta and value is not None and value not in meta["choices"]:
            problems.append(ConfigProblem((*path, key),
                                          f"must be one of {', '.join(meta['choices'])}"))
            continue
        if "pattern" in meta and isinstance(value, str) and not re.match(meta["pattern"], value):
            problems.append(ConfigProblem((*path, key), f"must be {meta['pattern_help']}"))
            continue
        if "min" in meta and isinstance(value, int | float) and value < meta["min"]:
            problems.append(ConfigProblem((*path, key), f"must be at least {meta['min']}"))
            continue
        if "max" in meta and isinstance(value, int | float) and value > meta["max"]:
            problems.append(ConfigProblem((*path, key), f"must be at most {meta['max']}"))
            continue
        values[key] = value
    for name, f in known.items():
        already = any(p.path == (*path, name) for p in problems)
        if present and f.metadata.get("required") and not table.get(name) and not already:
            problems.append(ConfigProblem((*path, name), "required"))
    return cls(**values)


def _suggest(key: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key, list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def parse(text: str, path: Path | None = None,
          env: Mapping[str, str] | None = None) -> tuple[Config, list[ConfigProblem]]:
    """Parse TOML text and validate the core's tables. Plugin checks are the caller's job."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        message = str(exc)
        match = re.search(r"\(at line (\d+), column \d+\)", message)
        line = int(match.group(1)) if match else None
        message = re.sub(r"\s*\(at line \d+, column \d+\)", "", message)
        return Config({}, path, text), [ConfigProblem((), f"invalid TOML: {message}", line)]
    problems: list[ConfigProblem] = []
    base = path.parent if path else None
    files: list[Path] = []
    data = _substitute(data, (), os.environ if env is None else env, problems, base, files)
    config = Config(data, path, text, files=files)
    for name, cls in CORE_SECTIONS.items():
        setattr(config, name, build_section(cls, data.get(name, {}), (name,), problems,
                                            present=name in data))
    retarus = config.retarus
    if "retarus" in data:
        if not retarus.region and not retarus.base_url:
            problems.append(ConfigProblem(("retarus",), "set region or base_url"))
        if retarus.region and retarus.base_url:
            problems.append(ConfigProblem(("retarus", "base_url"),
                                          "set region or base_url, not both"))
    plugins = data.get("plugins", {})
    if not isinstance(plugins, dict):
        problems.append(ConfigProblem(("plugins",), "must be a table"))
    elif not isinstance(plugins.get("disable", []), list):
        problems.append(ConfigProblem(("plugins", "disable"), "must be a list of plugin names"))
    if config.journal.backend == "postgresql" and not config.journal.url:
        problems.append(ConfigProblem(("journal", "url"), "required for backend postgresql"))
    return config, problems


def check_sections(config: Config, claimed: Iterable[str]) -> list[ConfigProblem]:
    allowed = {*CORE_SECTIONS, "plugins", *claimed}
    return [ConfigProblem((key,), "unknown table" + _suggest(key, allowed))
            for key in config.data if key not in allowed]


def with_lines(config: Config, problems: Iterable[ConfigProblem]) -> list[ConfigProblem]:
    return [p if p.line else dataclasses.replace(p, line=config.locate(p.path))
            for p in problems]


def read(path: Path, env: Mapping[str, str] | None = None) -> tuple[Config, list[ConfigProblem]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{path}: cannot read: {exc}") from None
    return parse(text, path, env)


def redact(value: Any, key: str = "") -> Any:
    """A copy safe to log: secret-looking keys replaced by '***'."""
    if isinstance(value, dict):
        return {k: ("***" if is_secret_key(k) and v else redact(v, k)) for k, v in value.items()}
    if isinstance(value, list):
        return [redact(v, key) for v in value]
    return value


def reference_markdown() -> str:
    """The core options as Markdown, generated from the schema (docs/configuration.md)."""
    lines = ["# Configuration reference (core)", "",
             "Generated from `faxflow/config.py` by `python -m faxflow.config`; a test keeps it",
             "in step. Plugins document their own `[plugins.<name>]` tables (docs/rules.md,",
             "docs/ocr.md, docs/destinations.md). Any string may use `${ENV_VAR}`, or",
             "`${ENV_VAR:-default}` for a default when it is unset or empty; a secret option",
             "`x` may instead be given as `x_file = \"/run/secrets/...\"`. Numbers and",
             "true/false may be written as text, as the environment gives them",
             "(`concurrency = \"${N:-4}\"`).", ""]
    for section, cls in CORE_SECTIONS.items():
        lines += [f"## [{section}]", "", "| option | type | default | meaning |",
                  "| --- | --- | --- | --- |"]
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            default: Any = f.default if f.default is not dataclasses.MISSING else []
            shown = "required" if f.metadata.get("required") else (
                "unset" if default is None else f"`{json.dumps(default)}`")
            lines.append(f"| `{f.name}` | {_type_name(hints[f.name])} | {shown} | "
                         f"{f.metadata['help']} |")
        lines.append("")
    lines += ["## [plugins]", "", "| option | meaning |", "| --- | --- |",
              "| `disable` | plugin names not to load, e.g. `[\"webhook\"]` |",
              "| `[plugins.<name>]` | options of plugin `<name>` |", ""]
    return "\n".join(lines)


if __name__ == "__main__":
    print(reference_markdown(), end="")
