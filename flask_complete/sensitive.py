"""What is secret, and how guessable a secret is: the strength test behind production's
``SECRET_KEY`` refusal, and the redaction of every value ``flask complete config`` prints.

Pure functions of values; :mod:`flask_complete.config` turns the answers into problems.
"""

from __future__ import annotations

import functools
import math
import re
import typing as t
from urllib.parse import unquote

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

#: Words that make a setting (or a table key, or a connection-string key) secret, matched in
#: the name written as upper-case words joined by "_" and framed by "_" (``clientSecret`` is
#: ``_CLIENT_SECRET_``). Django's ``API TOKEN KEY SECRET PASS SIGNATURE AUTH`` and more.
SECRET_NAME = re.compile(
    # Anywhere, also inside a word: DBPASS, PASSWD, SSLPASSWORD, WEBHOOK, SENTRY_DSN.
    r"SECRET|PASS|TOKEN|CREDENTIAL|PRIVATE|SIGNATURE|SIGNING|HMAC|SALT|PWD|DSN|HOOK|"
    r"AUTH(?!OR(?!I[SZ]))|"  # AUTH, OAUTH, AUTHORIZATION; not AUTHOR
    # Ending a word: FERNET_KEY, APIKEY, ACCESS_KEYS, LDAP_BIND_PW, BINDPW, API, DB_CONN.
    r"(?:KEYS?|PW|API|CONN)_|"
    # Starting a word: APIKEY; and connection strings: DBCONNSTR, CONNECTION_STRING.
    r"_API|CONNSTR|CONNINFO|CONNECTION_?STR|"
    # An id that is half a login: Vault's AppRole logs in with a role id and a secret id.
    r"^(?=.*(?:VAULT|APPROLE)).*ROLE_?IDS?_"
)
SHOWN = "***"
#: Schemes SQLAlchemy reads as a database URL: the user name is shown, the password is not.
_DATABASE_SCHEMES = re.compile(
    r"^(sqlite|postgres|postgresql|mysql|mariadb|oracle|mssql|cockroachdb|duckdb|snowflake)"
    r"(\+[\w.-]+)?$",
    re.IGNORECASE,
)
_URL = re.compile(r"^(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)://(?P<rest>.*)$", re.DOTALL)
#: The start of something meant as a URL that is not one: ``postgres//``, ``postgresql:/``.
_LOOSE_URL = re.compile(r"^\s*(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*)[:/]+")
_QUERY_PARAMETER = re.compile(r"([?&;])([^=&#;]*)=([^&#;]*)")
#: A ``key=`` of a connection string: after its start, a ``;`` (ADO.NET, ODBC, JDBC), ``&``
#: or ``?`` (query strings), ``,`` or spaces (libpq).
_PAIR = re.compile(r"(?:(?P<sep>^|[;&?,])\s*|(?<=[\s-]))(?P<key>[A-Za-z][\w. -]*?)\s*=\s*")
_QUOTES = {'"': '"', "'": "'", "{": "}"}


@functools.lru_cache(maxsize=4096)
def secret_name(key: str) -> bool:
    """Whether the setting (or table key, or connection-string key) ``key`` names a secret."""
    # camelCase -> camel_Case, PW1 -> PW_1: a word ends where the case or a number starts.
    words = re.sub(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Za-z])(?=[0-9])", "_", key)
    return bool(SECRET_NAME.search(f"_{re.sub(r'[^A-Za-z0-9]+', '_', words).upper()}_"))


def redact(key: str, value: t.Any, *, hidden: bool = False) -> t.Any:
    """``value`` safe to print.

    Hidden as ``***`` (true, false and empty values stay): the value of a secret-named key and
    everything inside a table or list under one; a webhook's URL keeps its scheme and host.
    In every other string: the password of a database URL, the user information of any other
    URL (also of one that does not parse), query parameters and connection-string values named
    like secrets (``?token=``, ``Password=...;``, ``password='...'``). flask_complete's own
    settings are never hidden by name alone.
    """
    own = key.upper() in NOT_SECRET
    return _redact(key, value, hidden or (not own and secret_name(key)), "" if own else key)


def _redact(key: str, value: t.Any, hidden: bool, path: str) -> t.Any:
    # ``path`` names a user's table (``VAULT`` for ``VAULT.role_id``), for the combined rules.
    if isinstance(value, dict):
        shown = {}
        for k, v in value.items():
            name = f"{path}_{k}" if path else str(k)
            shown[k] = _redact(str(k), v, hidden or secret_name(name), name)
        return shown
    if isinstance(value, list | tuple | set | frozenset):
        return [_redact(key, v, hidden, path) for v in value]
    if isinstance(value, bool) or value is None or (isinstance(value, str | bytes) and not value):
        return value
    if hidden:
        if isinstance(value, str) and "HOOK" in key.upper():
            return _hook(value)
        return SHOWN
    if isinstance(value, str):
        return redact_url(value)
    return value


def _hook(url: str) -> str:
    """A webhook's URL with only its scheme and host: the path and query are its secret."""
    match = _URL.match(url)
    if match is None:
        return SHOWN
    rest = match["rest"]
    at = _userinfo_end(rest, database=False)
    host = re.split(r"[/?#]", rest[at + 1 :], maxsplit=1)[0]
    return f"{match['scheme']}://{SHOWN + '@' if at >= 0 else ''}{host}/{SHOWN}"


def _userinfo_end(rest: str, *, database: bool) -> int:
    """Where the user information of a URL's ``rest`` (after ``://``) ends: its last ``@``, or
    -1. A password may hold ``/``, ``?``, ``#`` and ``@`` unescaped, so when the part before
    the first ``/?#`` holds an ``@`` or a ``:`` not followed by a port (``localhost:5000``),
    the last ``@`` of all ends it; an ``@`` later in another URL (``?email=a@b``) does not."""
    if database:
        return rest.rfind("@")
    authority = re.split(r"[/?#]", rest, maxsplit=1)[0]
    if "@" in authority or re.search(r":(?![0-9*]+$)", authority):
        return rest.rfind("@")
    return -1


def redact_url(url: t.Any) -> str:
    """``url`` (or any text) safe to print: a database URL keeps its user and loses its
    password, any other URL loses its whole user information (``https://***@host``), also a
    URL that does not parse (``postgres//app:***@host/db``); query parameters and
    connection-string values named like secrets (``?token=``, ``Password=...;``) are hidden."""
    text = str(url)
    match = _URL.match(text)
    if match is not None:
        scheme, rest = match["scheme"], match["rest"]
        database = bool(_DATABASE_SCHEMES.match(scheme))
        at = _userinfo_end(rest, database=database)
        if at >= 0:
            user, colon, _ = rest[:at].partition(":")
            userinfo = user + (f":{SHOWN}" if colon else "") if database else SHOWN
            rest = userinfo + rest[at:]
        rest = _QUERY_PARAMETER.sub(_query_parameter, rest)
        text = f"{scheme}://{rest}"
    elif (loose := _LOOSE_URL.match(text)) and "@" in text[loose.end() :]:
        # Meant as a URL but not one (a slash or colon short): the same userinfo, by its "@".
        start, at = loose.end(), text.rfind("@")
        user, colon, _ = text[start:at].partition(":")
        database = bool(_DATABASE_SCHEMES.match(loose["scheme"]))
        userinfo = user + f":{SHOWN}" if database and colon else SHOWN
        text = text[:start] + userinfo + text[at:]
    return _redact_pairs(text)


def _query_parameter(match: re.Match[str]) -> str:
    sep, name, value = match[1], match[2], match[3]
    # A connection string passed whole in a parameter (mssql's ?odbc_connect=...PWD%3D...).
    if secret_name(name) or _redact_pairs(unquote(value)) != unquote(value):
        return f"{sep}{name}={SHOWN}"
    return match[0]


def _redact_pairs(text: str) -> str:
    """``text`` with the value of every secret-named ``key=value`` of a connection string
    hidden: quoted (``"..."``, ``'...'``, ``{...}``) to its closing quote, otherwise to the next
    ``;`` after a ``;`` (ADO.NET, ODBC, JDBC) or ``&`` in a query, else to the later of the next
    space and ``;`` (libpq separates with spaces; a password may hold a ``;``)."""
    if "=" not in text:
        return text
    parts, done, pos = [], 0, 0
    while (pair := _PAIR.search(text, pos)) is not None:
        pos = pair.end()
        if secret_name(pair["key"]) and (end := _value_end(text, pos, pair["sep"])) > pos:
            parts += [text[done:pos], SHOWN]
            done = pos = end
    return "".join(parts) + text[done:]


def _value_end(text: str, start: int, sep: str | None) -> int:
    """Where the value starting at ``start`` ends (see :func:`_redact_pairs`)."""
    close = _QUOTES.get(text[start : start + 1])
    if close is not None:
        i = start + 1
        while i < len(text):
            if text[i] == "\\" and close == "'":  # libpq escapes with a backslash
                i += 2
                continue
            if text[i] == close:
                if text[i + 1 : i + 2] != close:  # a doubled quote is a quote inside
                    return i + 1
                i += 1
            i += 1
        return len(text)

    def next_of(chars: str) -> int:
        found = [i for c in chars if (i := text.find(c, start)) >= 0]
        return min(found) if found else len(text)

    if sep == ";":
        return next_of(";")
    if sep in ("&", "?"):
        return next_of("&#;")
    # At the start, after a space or a comma: libpq (spaces) or ADO.NET (";") alike.
    ends = [i for c in (";", " ", "\t", "\n", ",") if (i := text.find(c, start)) >= 0]
    return max(ends) if len(ends) > 1 else (ends[0] if ends else len(text))
