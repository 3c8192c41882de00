"""`faxflow check` never shows a traceback, whatever a plugin returns or raises: each odd
behaviour becomes a problem naming the plugin (and the file, line and rule where known).

The plugins are one-file plugins in a --plugins-dir, run through the real `faxflow check`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

HEADER = "from faxflow.hookspecs import hookimpl\nfrom faxflow.types import DestinationType\n"
PLUGINS = {
    # faxflow_check_config returning plain strings, one string, an int, odd items, raising
    "strings": "@hookimpl\ndef faxflow_check_config(config):\n"
               "    return ['greeting: must be a string', 'plain words without a key']\n",
    "onestring": "@hookimpl\ndef faxflow_check_config(config):\n    return 'oops: bad'\n",
    "number": "@hookimpl\ndef faxflow_check_config(config):\n    return 42\n",
    "oddities": "@hookimpl\ndef faxflow_check_config(config):\n    return [{'x': 1}]\n",
    "raising": "@hookimpl\ndef faxflow_check_config(config):\n    raise ValueError('no')\n",
    # a section list that is a string; destination types that raise or are not types
    "sections": "@hookimpl\ndef faxflow_config_sections():\n    return 'rule'\n",
    "badtypes": "@hookimpl\ndef faxflow_destination_types():\n    return ['folder2']\n",
    "raisetypes": "@hookimpl\ndef faxflow_destination_types():\n    raise OSError('disk')\n",
    # a destination whose option check raises, and one whose check returns junk
    "mydest": "def check(options):\n    raise KeyError('boom')\n"
              "@hookimpl\ndef faxflow_destination_types():\n"
              "    return [DestinationType('mydest', check)]\n",
    "junkdest": "@hookimpl\ndef faxflow_destination_types():\n"
                "    return [DestinationType('junkdest', lambda options: 7)]\n",
}
CONFIG = """\
[retarus]
base_url = "http://127.0.0.1:9/faxin/rest/v1"
username = "99999"
password = "x"
topics = ["t"]

[plugins.strings]
greeting = 3

[plugins.folder]
base = "{out}"

[plugins.rules.default]
[[plugins.rules.default.route]]
type = "folder"

[[rule]]
name = "custom"
when.csid = "ACME"
[[rule.route]]
type = "mydest"
x = 1
[[rule.route]]
type = "junkdest"
"""


def check(tmp_path: Path, plugins: dict[str, str], config: str) -> subprocess.CompletedProcess[str]:
    folder = tmp_path / "plugins"
    folder.mkdir(exist_ok=True)
    for name, body in plugins.items():
        (folder / f"{name}.py").write_text(HEADER + body)
    path = tmp_path / "faxflow.toml"
    path.write_text(config)
    env = {**os.environ, "FAXFLOW_LOAD_PLUGINS": "rules,folder",
           "FAXFLOW_PLUGINS_DIR": str(folder)}
    return subprocess.run([sys.executable, "-m", "faxflow", "check", "-c", str(path)],
                          capture_output=True, text=True, env=env, timeout=60)


def test_whatever_a_plugin_returns_or_raises_check_reports_it(tmp_path: Path) -> None:
    result = check(tmp_path, PLUGINS, CONFIG.format(out=tmp_path))
    err = result.stderr
    assert result.returncode == 2, result.stdout
    assert "Traceback" not in err
    f = tmp_path / "faxflow.toml"
    expected = [
        f"{f}:8: plugins.strings.greeting: must be a string",
        f"{f}:7: plugins.strings: plain words without a key",
        f"{f}: plugins.onestring.oops: bad",
        f"{f}: plugins.number: the configuration check of plugin number returned int, not a "
        "list of problems",
        f"{f}: plugins.oddities: the configuration check of plugin oddities returned "
        "{'x': 1} as a problem (expected a ConfigProblem or a 'key: message' string)",
        f"{f}: plugins.raising: plugin raising: its configuration check raised "
        "ValueError('no')",
        f"{f}: plugin sections: faxflow_config_sections returned 'rule', not a list of names",
        f"{f}: plugin badtypes: faxflow_destination_types returned 'folder2', not a "
        "DestinationType",
        f"{f}: plugin raisetypes: faxflow_destination_types raised OSError('disk')",
        f"{f}:20: rule[0].route[0]: rule 'custom': route.0: mydest: the option check of "
        "plugin mydest raised KeyError('boom')",
        f"{f}:23: rule[0].route[1]: rule 'custom': route.1: junkdest: the option check of "
        "plugin junkdest returned int, not a list of problems",
    ]
    lines = err.splitlines()
    for line in expected:
        assert line in lines, f"missing: {line}\n{err}"


def test_a_plugin_refusing_the_configuration_is_named(tmp_path: Path) -> None:
    plugins = {"picky": "@hookimpl\ndef faxflow_configure(config):\n"
                        "    raise RuntimeError('needs more cheese')\n"}
    config = CONFIG.split("[[rule]]")[0].format(out=tmp_path).replace(
        "[plugins.strings]\ngreeting = 3\n", "")
    result = check(tmp_path, plugins, config)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert (f"{tmp_path / 'faxflow.toml'}: plugin picky refused the configuration: "
            "RuntimeError: needs more cheese") in result.stderr.splitlines()
