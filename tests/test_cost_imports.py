"""What installing and calling flask_complete imports: the ``flask`` command's entry point
imports nothing of the bundle until a command runs, and Dynaconf is imported only for a value
with a ``@token``, read exactly as Dynaconf reads it. (Speed is measured by
``benchmarks/bench_cli.py``; these tests pin the behaviour that makes it fast.)"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import typing as t
from pathlib import Path

import pytest
from dynaconf.utils.parse_conf import parse_conf_data

from flask_complete.settings import config

REPO = Path(__file__).resolve().parent.parent


def _fresh(code: str, cwd: Path, env: dict[str, str] | None = None) -> t.Any:
    """Run ``code`` in a new interpreter; it prints one JSON document, returned here."""
    environ = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith("FLASK_") and k not in ("DATABASE_URL", "SECRET_KEY", "REDIS_URL")
    }
    environ["PYTHONPATH"] = os.pathsep.join([str(REPO), environ.get("PYTHONPATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        cwd=cwd,
        env={**environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.splitlines()[-1])


def test_the_entry_point_imports_nothing_of_the_bundle(tmp_path: Path) -> None:
    added = _fresh(
        """
        import json, sys
        import flask.cli, flask
        before = set(sys.modules)
        from importlib.metadata import entry_points
        (ep,) = [e for e in entry_points(group="flask.commands") if e.name == "complete"]
        group = ep.load()
        print(json.dumps(sorted(set(sys.modules) - before)))
        """,
        tmp_path,
    )
    assert [m for m in added if m.startswith("flask_complete")] == [
        "flask_complete",
        "flask_complete.cli",
    ]
    assert not [m for m in added if m.split(".")[0] in ("dynaconf", "sqlalchemy", "tomllib")]


def test_a_one_call_app_imports_no_dynaconf(tmp_path: Path) -> None:
    (tmp_path / "settings.toml").write_text(
        '[default]\nGREETING = "hello"\nLIMITS = {size = 3, names = ["a"]}\n'
        "[development]\nDATABASE_POOL_SIZE = 7\n"
    )
    (tmp_path / ".env").write_text("FLASK_FROM_DOTENV=[1, 2]\n")
    found = _fresh(
        f"""
        import json, sys
        from flask import Flask
        from flask_complete import Complete
        app = Flask("costapp", root_path={str(tmp_path)!r})
        Complete(app, env="development", root={str(tmp_path)!r})
        keys = ("GREETING", "LIMITS", "DATABASE_POOL_SIZE", "FROM_ENV", "FROM_DOTENV")
        values = {{k: app.config[k] for k in keys}}
        print(json.dumps([sorted(m for m in sys.modules if m.startswith("dynaconf")), values]))
        """,
        tmp_path,
        env={"FLASK_FROM_ENV": "9"},
    )
    dynaconf, values = found
    assert dynaconf == []
    assert values == {
        "GREETING": "hello",
        "LIMITS": {"size": 3, "names": ["a"]},
        "DATABASE_POOL_SIZE": 7,
        "FROM_ENV": 9,
        "FROM_DOTENV": [1, 2],
    }


def test_a_token_imports_dynaconf_and_applies(tmp_path: Path) -> None:
    found = _fresh(
        f"""
        import json, sys
        from flask import Flask
        from flask_complete import Complete
        app = Flask("costapp", root_path={str(tmp_path)!r})
        Complete(app, env="development", root={str(tmp_path)!r})
        print(json.dumps(["dynaconf" in sys.modules, app.config["TOKEN_VALUE"]]))
        """,
        tmp_path,
        env={"FLASK_TOKEN_VALUE": "@int 42"},
    )
    assert found == [True, 42]


#: Raw environment strings: numbers, booleans, arrays, tables, dates, strings that only look like
#: TOML, invalid TOML, empty, quotes, and what the vendored TOML reader might read otherwise.
ENV_STRINGS = [
    "9",
    "-0",
    "1_000",
    "0x1f",
    "1e3",
    "inf",
    "nan",
    "3.14",
    "true",
    "false",
    "True",
    "[1, 2]",
    "[1, 'a', [true]]",
    "{a = 1, b = {c = 'x'}}",
    "1979-05-27",
    "1979-05-27T07:32:00Z",
    "07:32:00",
    "hello",
    "hello world",
    "",
    " ",
    '"quoted"',
    "'single'",
    '"""multi"""',
    "http://localhost:5000",
    "a=b",
    "1 2",
    "[1,",
    "{a = }",
    "key = 1",
    "9 # comment",
    "\u00e9t\u00e9",
    "a@b",
    "@",
    "@unknown value",
]


def _plain(value: t.Any) -> t.Any:
    # Older Dynaconf (3.2) returns its Box for a table: compare the values, as app.config gets.
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    return value


@pytest.mark.parametrize("raw", ENV_STRINGS)
def test_env_strings_are_read_as_dynaconf_reads_them(raw: str) -> None:
    expected = _plain(parse_conf_data(raw, tomlfy=True, box_settings={}))
    # repr: nan equals no nan, and 1 == True; the types must match too.
    assert repr(config._typed("ANY", raw, "env", tomlfy=True)) == repr(expected)


FILE_VALUES: list[t.Any] = [
    "plain",
    "",
    5,
    1.5,
    True,
    ["a", 1, {"b": "c"}],
    {"a": {"b": [1, "x"]}},
    "@int 5",
    ["@bool true", "x"],
    {"nested": "@json [1, 2]"},
    "@unknown thing",
]


@pytest.mark.parametrize("value", FILE_VALUES, ids=repr)
def test_file_values_are_read_as_dynaconf_reads_them(value: t.Any) -> None:
    expected = _plain(parse_conf_data(json.loads(json.dumps(value)), tomlfy=False, box_settings={}))
    assert repr(config._typed("ANY", value, "settings.toml", tomlfy=False)) == repr(expected)


def test_dotenv_is_read_as_dynaconf_reads_it(tmp_path: Path) -> None:
    """The reader loaded from Dynaconf's folder without importing Dynaconf reads a file exactly
    as ``dynaconf.vendor.dotenv`` does."""
    (tmp_path / ".env").write_text(
        "# comment\nA=1\nexport B='two words'\nC=\"x\\ny\"\nD=${A}-z\nE\nF=  spaced  \n"
    )
    private, dynaconf_loaded, vendored = _fresh(
        f"""
        import json, sys
        from pathlib import Path
        from flask_complete.settings import config
        path = Path({str(tmp_path)!r}) / ".env"
        private = config._dotenv_reader().dotenv_values(path)
        loaded = "dynaconf" in sys.modules
        from dynaconf.vendor.dotenv import dotenv_values
        print(json.dumps([private, loaded, dotenv_values(path)]))
        """,
        tmp_path,
    )
    assert not dynaconf_loaded
    assert private == vendored
    assert private["B"] == "two words" and private["D"] == "1-z" and private["E"] is None
