"""What is secret, and how guessable a secret is: the strength test behind production's
``SECRET_KEY`` refusal, and the redaction of every value ``flask complete config`` prints.

Pure functions of values; :mod:`flask_complete.config` turns the answers into problems.
"""

from __future__ import annotations

import math
import re
import typing as t

from .settings_schema import NOT_SECRET

#: Fewer bytes than this is refused in production.
MIN_SECRET_BYTES = 32
#: Fewer different characters than this is refused. A smaller alphabet gets a lower bar: random
#: 32-character hex keys use 14 different digits on average (fewer than 9: 1 in 370,000),
#: random 32-digit numbers 9 or 10 (fewer than 6: 1 in 17 million).
MIN_DISTINCT = 10
MIN_DISTINCT_HEX = 9
MIN_DISTINCT_DIGITS = 6
_HEX = frozenset(b"0123456789abcdefABCDEF")
_DIGITS = frozenset(b"0123456789")
#: A key whose runs and repeats make up this share of it is padding around a word.
MAX_FILLER = 0.45
#: A key estimated below this many bits of randomness is refused. Random 32-digit numbers, the
#: poorest random keys we accept, estimate at 63 bits or more.
MIN_SECRET_BITS = 60

PLACEHOLDER_SECRETS = re.compile(
    r"^(dev|development|secret|changeme|change[-_ ]?me.*|.*not[-_ ]?secret.*|your[-_ ]?secret.*|"
    r"replace[-_ ]?me.*|test|testing|password|xxx+)$",
    re.IGNORECASE,
)


def _symbols(value: str | bytes) -> list[int]:
    return list(value) if isinstance(value, bytes) else [ord(c) for c in value]


def _chunks(seq: list[int]) -> tuple[int, int]:
    """How many pieces ``seq`` is made of when a run (``aaaa``, ``1234``, ``dcba``) or a repeat
    of earlier text, three symbols or longer, counts as one piece; and how many symbols those
    pieces absorbed. A rough measure of how much of a key is not filler."""
    pieces, filler, i = 0, 0, 0
    while i < len(seq):
        longest = 1
        for step in (-1, 0, 1):
            n = 1
            while i + n < len(seq) and seq[i + n] - seq[i + n - 1] == step:
                n += 1
            longest = max(longest, n)
        for start in range(i):  # repeats may overlap the text they copy, as in LZ77
            n = 0
            while i + n < len(seq) and seq[start + n] == seq[i + n]:
                n += 1
            longest = max(longest, n)
        pieces += 1
        if longest >= 3:
            filler += longest - 1
            i += longest
        else:
            i += 1
    return pieces, filler


def _period(seq: list[int]) -> int | None:
    """The length of the shortest pattern ``seq`` repeats at least twice, if any."""
    for p in range(1, len(seq) // 2 + 1):
        if all(seq[i] == seq[i - p] for i in range(p, len(seq))):
            return p
    return None


def weakness(value: str | bytes) -> str | None:
    """Why ``value`` is a guessable key (a phrase completing "the key ..."), or ``None``.

    Judged besides its length: only whitespace, one character or a short pattern repeated, too
    few different characters, mostly filler (runs, repeats) around a word, or too few bits of
    randomness by a rough estimate (pieces times the bits of one character).
    """
    if isinstance(value, str) and not value.strip():
        return "is only whitespace"
    seq = _symbols(value)[:256]  # long enough to judge; keeps the quadratic scan cheap
    symbols = set(seq)
    distinct = len(symbols)
    if distinct == 1:
        return "is one character repeated"
    if (period := _period(seq)) is not None:
        return f"is a pattern of {period} characters repeated"
    if symbols <= _DIGITS:
        needed = MIN_DISTINCT_DIGITS
    elif symbols <= _HEX:
        needed = MIN_DISTINCT_HEX
    else:
        needed = MIN_DISTINCT
    if distinct < needed:
        return f"uses only {distinct} different characters; a random key uses {needed} or more"
    pieces, filler = _chunks(seq)
    if filler >= MAX_FILLER * len(seq):
        return (
            f"is mostly filler: {filler} of its {len(seq)} characters repeat earlier text or "
            "continue runs like aaaa or 1234"
        )
    if (bits := pieces * math.log2(distinct)) < MIN_SECRET_BITS:
        return (
            f"has about {bits:.0f} bits of randomness by a rough estimate; production needs "
            f"{MIN_SECRET_BITS}"
        )
    return None


# -- redaction -------------------------------------------------------------------------------

#: Names whose values are secrets. ``KEY`` counts as a name part (``FERNET_KEY``, ``APIKEY``).
SECRET_NAME = re.compile(
    r"SECRET|PASSWORD|PASSWD|PASSPHRASE|TOKEN|CREDENTIAL|API_?KEY|PRIVATE|DSN|AUTH|"
    r"(?:^|_)[A-Z]*KEYS?(?:$|_)",
    re.IGNORECASE,
)
SHOWN = "***"
#: Schemes SQLAlchemy reads as a database URL: the user name is shown, the password is not.
_DATABASE_SCHEMES = re.compile(
    r"^(sqlite|postgres|postgresql|mysql|mariadb|oracle|mssql|cockroachdb|duckdb|snowflake)"
    r"(\+[\w.-]+)?$",
    re.IGNORECASE,
)
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
_QUERY_PARAMETER = re.compile(r"([?&;])([^=&#;]*)=([^&#;]*)")


def secret_name(key: str) -> bool:
    """Whether the setting (or table key) ``key`` names a secret."""
    return bool(SECRET_NAME.search(key))


def redact(key: str, value: t.Any, *, hidden: bool = False) -> t.Any:
    """``value`` safe to print: values of secret-named keys, and everything inside a table or
    list under such a key, become ``***`` (true, false and empty values stay); the password of
    a database URL, the user information of any other URL, and query parameters named like
    secrets are hidden. flask_complete's own settings are never hidden by name alone.
    """
    hidden = hidden or (key.upper() not in NOT_SECRET and secret_name(key))
    if isinstance(value, dict):
        return {k: redact(str(k), v, hidden=hidden) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [redact(key, v, hidden=hidden) for v in value]
    if isinstance(value, bool) or value is None or (isinstance(value, str | bytes) and not value):
        return value
    if hidden:
        return SHOWN
    if isinstance(value, str) and "://" in value:
        return redact_url(value)
    return value


def redact_url(url: t.Any) -> str:
    """``url`` safe to print: a database URL keeps its user and loses its password, any other
    URL loses its whole user information (``https://***@host``); query parameters named like
    secrets (``?password=``, ``?token=``) are hidden too."""
    text = str(url)
    match = _URL.match(text)
    if match is None:
        return text
    scheme, rest = match["scheme"], match["rest"]
    database = bool(_DATABASE_SCHEMES.match(scheme))
    # The user information ends at the last "@" (a password may hold "/"), before the query in
    # other URLs (``?email=a@b``); database passwords are written unescaped, "?" included.
    at = (rest if database else re.split(r"[?#]", rest, maxsplit=1)[0]).rfind("@")
    if at >= 0:
        user, colon, _ = rest[:at].partition(":")
        userinfo = user + (f":{SHOWN}" if colon else "") if database else SHOWN
        rest = userinfo + rest[at:]
    rest = _QUERY_PARAMETER.sub(
        lambda m: f"{m[1]}{m[2]}={SHOWN}" if secret_name(m[2]) else m[0], rest
    )
    return f"{scheme}://{rest}"
