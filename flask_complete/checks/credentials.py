"""The checks of the encrypted credentials, for :mod:`flask_complete.checks.rules`: production's
file judged with production's key, secrets left in plain text, and keys that git tracks."""

from __future__ import annotations

import os
import shutil
import subprocess
import typing as t
from dataclasses import replace
from pathlib import Path

from ..settings import credentials as cred
from ..settings.config import SECRETS_FILE, ConfigError, Problem, read_toml

_PRODUCTION = "production"


def production_credentials(
    root: Path, instance_path: str | os.PathLike[str], env: str
) -> list[Problem]:
    """``credentials/production.toml.enc`` decrypted with the production key, as production
    would. Outside production a machine without that key cannot judge it: a warning."""
    try:
        cred.read(root, _PRODUCTION, instance_path)
    except cred.CredentialsError as e:
        (problem,) = e.problems
        if problem.id == "credentials.key_missing" and env != _PRODUCTION:
            own, shared = cred.variables(_PRODUCTION)
            file = cred.key_file(instance_path, _PRODUCTION)
            return [
                replace(
                    problem,
                    level="warning",
                    message=f"{problem.key} cannot be checked here: this machine has no "
                    f"production key ({own}, {shared} or {file}).",
                    fix=f"Run `flask complete check` where the app runs, or with {own} set.",
                )
            ]
        return [problem]
    return []


def plaintext_secrets(root: Path) -> list[Problem]:
    """Secrets production would read from ``.secrets.toml``, a plain file copied by hand, that
    the committed, encrypted credentials could hold instead (their values judged)."""
    from .secret_files import _judge

    path = root / SECRETS_FILE
    if not path.is_file():
        return []
    try:
        data = read_toml(path)
    except ConfigError:
        return []  # reported by the settings themselves
    found = []
    for key, value in data.items():
        section = key.lower()
        if isinstance(value, dict) and key == section:
            if section in ("default", "global", _PRODUCTION):
                found += [c.key for k, v in value.items() for c in _judge("", k, k, v, section)]
        else:
            found += [c.key for c in _judge("", key, key, value, "default")]
    if not found:
        return []
    return [
        Problem(
            "credentials.plaintext",
            SECRETS_FILE,
            f"{SECRETS_FILE} holds {', '.join(found)} in plain text for production: a file "
            "copied between machines by hand, whose secrets outlive the people who had it.",
            f"Move them into {cred.label(_PRODUCTION)} "
            f"({cred.edit_command(_PRODUCTION)}) and delete them from {SECRETS_FILE}.",
            level="warning",
        )
    ]


def tracked_keys(root: Path, instance_path: str | os.PathLike[str]) -> list[Problem]:
    """Credentials keys in files git tracks: the key files, and any tracked file that holds a
    key of this machine (each environment's, from its variable or its key file)."""
    git = shutil.which("git")
    if git is None:
        return []
    found: set[str] = set()
    with_keys = []
    for env in ("development", "testing", _PRODUCTION):
        try:
            key = cred.find_key(env, instance_path)
        except cred.CredentialsError:
            continue
        if key is not None:
            with_keys.append(key.encoded())
    run = _git(git, root)
    if with_keys:
        # The keys go through stdin: a command line is visible to every user of the machine.
        found.update(run(["grep", "-l", "-F", "-f", "-"], "\n".join(with_keys) + "\n"))
    folder = Path(instance_path) / cred.FOLDER
    if folder.resolve().is_relative_to(root.resolve()):
        found.update(run(["ls-files", "--", str(folder.resolve().relative_to(root.resolve()))]))
    if not found:
        return []
    files = sorted(found)
    return [
        Problem(
            "credentials.key_tracked",
            cred.KEY_VARIABLE,
            f"git tracks {', '.join(files)}, which holds a credentials key: every clone of the "
            "repository can decrypt the credentials.",
            f"git rm --cached {' '.join(files)}; keep keys out of git (the instance folder is "
            "git-ignored); then `flask complete credentials rotate` for each environment and "
            "change the secrets inside: the key stays in the history.",
        )
    ]


def _git(git: str, root: Path) -> t.Callable[..., list[str]]:
    def run(args: list[str], stdin: str | None = None) -> list[str]:
        result = subprocess.run(
            [git, "-C", str(root), *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        return result.stdout.split() if result.returncode == 0 else []

    return run
