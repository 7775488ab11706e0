"""Encrypted credentials: ``credentials/<env>.toml.enc``, committed, one file per environment.

A file is one header line and the encrypted TOML text below it. AES-256-GCM (from
``cryptography``, imported only when a file is read or written) authenticates the header with
the text: the environment it names, and the key's fingerprint that lets a wrong key be told from
a changed file. The key of an environment is ``FLASK_CREDENTIALS_KEY_<ENV>``, else
``FLASK_CREDENTIALS_KEY``, else ``<instance folder>/credentials/<env>.key``.

The decrypted values are a settings layer between ``.secrets.toml`` and the environment
(:func:`layers`, called by :func:`flask_complete.settings.config.load`): any failure is one
:class:`~flask_complete.problems.ConfigError` and no value of the file is used.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import secrets
import tomllib
import typing as t
from dataclasses import dataclass
from pathlib import Path

from ..problems import ConfigError, Problem

if t.TYPE_CHECKING:
    from flask import Flask

FOLDER = "credentials"
#: The variable that holds every environment's key, unless the environment has its own.
KEY_VARIABLE = "FLASK_CREDENTIALS_KEY"
KEY_BYTES = 32
NONCE_BYTES = 12
_MAGIC = "flask_complete credentials v1"
_FIX_RESTORE = "Restore the file from git (git checkout -- {file}) or write it again with {edit}."


class CredentialsError(ConfigError):
    """A credentials file that cannot be used: no key, a wrong key, a changed file."""


@dataclass(frozen=True)
class Key:
    """An environment's key and where it was found (a variable's name, or the key file)."""

    raw: bytes
    source: str

    @property
    def fingerprint(self) -> str:
        """Eight hex digits naming the key in the file's header and in errors (not secret: a
        hash of 256 random bits)."""
        return hashlib.sha256(b"flask_complete credentials key:" + self.raw).hexdigest()[:8]

    def encoded(self) -> str:
        return base64.urlsafe_b64encode(self.raw).decode()


def path_of(root: Path, env: str) -> Path:
    """``credentials/<env>.toml.enc`` under the project root."""
    return root / FOLDER / f"{env}.toml.enc"


def label(env: str) -> str:
    """The file as errors and ``flask complete config`` name it."""
    return f"{FOLDER}/{env}.toml.enc"


def key_file(instance_path: str | os.PathLike[str], env: str) -> Path:
    """``<instance folder>/credentials/<env>.key``: git-ignored with the instance folder."""
    return Path(instance_path) / FOLDER / f"{env}.key"


def variables(env: str) -> tuple[str, str]:
    """The variables that may hold ``env``'s key, the first winning."""
    return f"{KEY_VARIABLE}_{env.upper()}", KEY_VARIABLE


def edit_command(env: str) -> str:
    return f"`flask complete credentials edit --env {env}`"


def _problem(id: str, env: str, message: str, fix: str) -> CredentialsError:
    return CredentialsError([Problem(id, label(env), message, fix)])


def generate_key() -> Key:
    return Key(secrets.token_bytes(KEY_BYTES), "generated")


def parse_key(text: str, source: str, env: str) -> Key:
    """A key written as URL-safe base64 of 32 bytes; judged by what it decodes to."""
    try:
        raw = base64.urlsafe_b64decode(text.strip().encode("ascii"))
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raw = b""
    if len(raw) != KEY_BYTES:
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{source} is not a credentials key: it must be {KEY_BYTES} random bytes in URL-safe "
            "base64 (44 characters).",
            f"Set it to the key the team keeps for {env} (`flask complete credentials edit` "
            "writes a new one).",
        )
    return Key(raw, source)


def find_key(env: str, instance_path: str | os.PathLike[str]) -> Key | None:
    """``env``'s key from the environment or the key file; ``None`` when there is none."""
    for name in variables(env):
        if value := os.environ.get(name, "").strip():
            return parse_key(value, name, env)
    path = key_file(instance_path, env)
    try:
        text = path.read_text()
    except FileNotFoundError:
        return None
    except OSError as e:
        raise _problem(
            "credentials.key_missing",
            env,
            f"The key file {path} cannot be read: {e.strerror}.",
            f"Make it readable by the app's user, or set {variables(env)[0]}.",
        ) from None
    return parse_key(text, str(path), env)


def missing_key(env: str, instance_path: str | os.PathLike[str]) -> CredentialsError:
    own, shared = variables(env)
    return _problem(
        "credentials.key_missing",
        env,
        f"{label(env)} exists but there is no key to decrypt it: {own} and {shared} are not "
        f"set and there is no {key_file(instance_path, env)}.",
        f"Set {own} to the {env} key (ask who holds it), or write it to that file (mode 600).",
    )


def _aesgcm(key: Key, env: str) -> t.Any:
    try:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM
    except ImportError:
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{label(env)} needs the cryptography package, which is not installed.",
            'pip install "flask-complete[credentials]"',
        ) from None
    return AESGCM(key.raw)


def _header(env: str, key: Key) -> str:
    return f"{_MAGIC} env={env} key={key.fingerprint}"


def encrypt(text: str, env: str, key: Key) -> bytes:
    """The file's bytes for the TOML ``text``: the header line, then base64 of nonce and
    ciphertext (the header is authenticated with it)."""
    header = _header(env, key)
    nonce = secrets.token_bytes(NONCE_BYTES)
    sealed = _aesgcm(key, env).encrypt(nonce, text.encode(), header.encode())
    return f"{header}\n{base64.b64encode(nonce + sealed).decode()}\n".encode()


def decrypt(data: bytes, env: str, key: Key) -> str:
    """The TOML text of a file's ``data``; one :class:`CredentialsError` for anything else."""
    file = label(env)
    damaged = _problem(
        "credentials.undecryptable",
        env,
        f"{file} is damaged (truncated or edited by hand): it is not a credentials file.",
        _FIX_RESTORE.format(file=file, edit=edit_command(env)),
    )
    header, newline, body = data.partition(b"\n")
    fields = dict(f.split("=", 1) for f in header.decode("latin-1").split()[3:] if "=" in f)
    if not header.decode("latin-1").startswith(_MAGIC + " ") or not newline:
        raise damaged
    if fields.get("env") != env:
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{file} holds the credentials of another environment "
            f"({fields.get('env', 'none')!r} in its header), not of {env}.",
            f"Restore {file} from git; each environment has its own file ({edit_command(env)}).",
        )
    if fields.get("key") != key.fingerprint:
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{file} was encrypted with key {fields.get('key')!r}, but {key.source} is key "
            f"{key.fingerprint!r}: the wrong key.",
            f"Set {variables(env)[0]} to the {env} key the file was written with (after a "
            "rotation, the new one).",
        )
    try:
        sealed = base64.b64decode(body.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise damaged from None
    # Base64 lets a last character's unused bits change: a file changed there is still refused.
    if base64.b64encode(sealed) != body.strip():
        raise damaged
    from cryptography.exceptions import InvalidTag

    try:
        plain = _aesgcm(key, env).decrypt(
            sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], header.decode("latin-1").encode()
        )
    except (InvalidTag, ValueError):
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{file} fails authentication with its key: it was changed or truncated after it "
            "was written.",
            _FIX_RESTORE.format(file=file, edit=edit_command(env)),
        ) from None
    return bytes(plain).decode()


def parse(text: str, env: str) -> dict[str, t.Any]:
    """The settings of a decrypted file: top-level keys, upper-cased as in settings.toml."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise _problem(
            "credentials.undecryptable",
            env,
            f"{label(env)} decrypts to invalid TOML: {e}.",
            f"Fix it with {edit_command(env)}.",
        ) from None
    sections = ("default", "global", "development", "testing", "production")
    for key, value in data.items():
        if key.lower() in sections and isinstance(value, dict):
            raise _problem(
                "credentials.undecryptable",
                env,
                f"{label(env)} has a [{key}] section, but it holds the {env} settings only.",
                f"Write its settings at the top level, without sections ({edit_command(env)}).",
            )
    return {key.upper(): value for key, value in data.items()}


def read(root: Path, env: str, instance_path: str | os.PathLike[str]) -> str | None:
    """The decrypted text of ``env``'s file; ``None`` when there is no file."""
    path = path_of(root, env)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        return None
    key = find_key(env, instance_path)
    if key is None:
        raise missing_key(env, instance_path)
    return decrypt(data, env, key)


def layers(app: Flask, env: str, root: Path) -> list[tuple[str, dict[str, t.Any]]]:
    """The settings layer of ``env``'s credentials, none without a file: all or nothing."""
    text = read(root, env, app.instance_path)
    return [] if text is None else [(label(env), parse(text, env))]


def write_private(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` at once (a crash leaves the old file or the new one),
    created with ``mode`` so that a key file is never readable by others, not even briefly."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(draft, path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            draft.unlink()


def write(root: Path, env: str, text: str, key: Key) -> Path:
    """Encrypt ``text`` (checked first: nothing invalid is written) into ``env``'s file."""
    parse(text, env)
    path = path_of(root, env)
    write_private(path, encrypt(text, env, key), 0o644)
    return path


def save_key(instance_path: str | os.PathLike[str], env: str, key: Key) -> Path:
    """Write ``key`` to ``env``'s key file, mode 600."""
    path = key_file(instance_path, env)
    write_private(path, (key.encoded() + "\n").encode(), 0o600)
    return path
