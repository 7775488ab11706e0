"""The files secrets live in, judged: which ones other users may open, which ones git tracks,
and which secrets the settings files git tracks hold (their values read, not their names).

:mod:`flask_complete.checks.rules` turns the answers into findings.
"""

from __future__ import annotations

import os
import re
import shutil
import stat
import subprocess
import typing as t
from urllib.parse import urlsplit

from ..settings import config as _config
from ..settings.schema import NOT_SECRET
from ..settings.sensitive import secret_name, strength

if t.TYPE_CHECKING:
    from pathlib import Path

#: Settings files meant to be committed: each is read for secrets when git tracks it.
SETTINGS_FILES = (_config.SETTINGS_FILE, ".flaskenv", ".env.example")
#: Sections of a settings file that production reads.
_PRODUCTION_SECTIONS = ("default", "global", "production")
#: Token formats that are a secret wherever they appear, whatever the setting is called.
TOKENS = {
    "a Stripe live key": re.compile(r"\b[rs]k_live_[0-9A-Za-z]{10,}"),
    "an AWS access key id": re.compile(r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b"),
    "a GitHub token": re.compile(r"\b(?:gh[oprsu]_[0-9A-Za-z]{30,}|github_pat_\w{30,})"),
    "a GitLab token": re.compile(r"\bglpat-[0-9A-Za-z_-]{20,}"),
    "a Slack token": re.compile(r"\bxox[abposr]-[0-9A-Za-z-]{10,}"),
    "a Google API key": re.compile(r"\bAIza[0-9A-Za-z_-]{35}"),
    "a private key": re.compile(r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY-----"),
}
#: A value that stands for a secret kept elsewhere: ``${VAR}``, ``$VAR``, ``<your key>``,
#: ``{{ var }}``, a Dynaconf token (``@format {env[X]}``, ``@get OTHER``).
_REFERENCE = re.compile(r"^(\$\{?\w+\}?|<[^<>]*>|\{\{.*\}\}|@\w+(\s.*)?)$", re.DOTALL)
#: Outside the sections production reads, a secret-named value estimated below this is taken
#: for a placeholder ("changeme", "dev-key"); above it, for a real secret.
PLACEHOLDER_BITS = 64


class Committed(t.NamedTuple):
    """A secret found in a tracked settings file."""

    file: str
    #: Where in the file: ``[production] SECRET_KEY``, ``SQLALCHEMY_BINDS.reports``.
    key: str
    #: What it is: "a Stripe live key", "a database password in a URL", ...
    what: str


def readable_secret_files(root: Path) -> list[tuple[str, int]]:
    """``.secrets.toml`` and ``.env`` under ``root`` that others may read or change, with their
    permission bits (none on Windows, which has no such bits)."""
    if os.name == "nt":
        return []
    found = []
    for name in (_config.SECRETS_FILE, _config.DOTENV_FILE):
        try:
            mode = stat.S_IMODE((root / name).stat().st_mode)
        except OSError:
            continue
        if mode & 0o066:
            found.append((name, mode))
    return found


def _tracked(root: Path, names: t.Iterable[str]) -> list[str]:
    """Which of ``names`` under ``root`` git tracks (none without git or outside a repository)."""
    git = shutil.which("git")
    if git is None:
        return []
    result = subprocess.run(
        [git, "-C", str(root), "ls-files", "--", *names],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    return result.stdout.split() if result.returncode == 0 else []


def tracked_secret_files(root: Path) -> list[str]:
    """Which of ``.secrets.toml`` and ``.env`` under ``root`` git tracks."""
    return _tracked(root, (_config.SECRETS_FILE, _config.DOTENV_FILE))


def committed_secrets(root: Path) -> list[Committed]:
    """The secrets in the settings files under ``root`` that git tracks, one per setting."""
    found: list[Committed] = []
    for name in _tracked(root, SETTINGS_FILES):
        path = root / name
        if name == _config.SETTINGS_FILE:
            try:
                data = _config.read_toml(path)
            except _config.ConfigError:
                continue  # reported by the settings themselves
            for key, value in data.items():
                section = key.lower()
                if isinstance(value, dict) and key == section:
                    for inner, v in value.items():
                        found += _judge(name, f"[{key}] {inner}", inner, v, section)
                else:
                    found += _judge(name, key, key, value, "default")
        elif path.is_file():
            values = _config._dotenv_reader().dotenv_values(path)
            for key, value in values.items():
                found += _judge(name, key, key.removeprefix("FLASK_"), value, "")
    return found


def _judge(file: str, where: str, key: str, value: t.Any, section: str) -> list[Committed]:
    """The secret in ``value`` (at most one finding per setting), judged by what it holds."""
    named = secret_name(key) and key.upper() not in NOT_SECRET
    for path, leaf, secret_named in _leaves("", value, named):
        what = secret_in(leaf, named=secret_named, production=section in _PRODUCTION_SECTIONS)
        if what:
            return [Committed(file, where + path, what)]
    return []


def _leaves(path: str, value: t.Any, named: bool) -> t.Iterator[tuple[str, t.Any, bool]]:
    """Each plain value inside ``value``, with its path below the setting (``.reports.url``)
    and whether a name on that path names a secret."""
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _leaves(f"{path}.{k}", v, named or secret_name(str(k)))
    elif isinstance(value, list | tuple):
        for v in value:
            yield from _leaves(path, v, named)
    else:
        yield path, value, named


def secret_in(value: t.Any, *, named: bool, production: bool) -> str | None:
    """What secret ``value`` is, or ``None``: a known token format anywhere; a URL with a
    password; the value of a secret-named setting unless it is empty, a reference to a secret
    kept elsewhere, or (outside the sections production reads) too guessable to be real."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value).strip()
    for what, pattern in TOKENS.items():
        if pattern.search(text):
            return what
    for url in re.findall(r"[A-Za-z][\w+.-]*://\S+", text):
        try:
            password = urlsplit(url).password
        except ValueError:
            continue
        if password and not _REFERENCE.match(password):
            return "a password in a URL"
    if not named or not text or _REFERENCE.match(text) or re.search(r"\$\{\w+\}", text):
        return None
    if production or strength(text).bits >= PLACEHOLDER_BITS:
        return "a secret-named setting's value"
    return None
