"""What is secret, and how guessable a secret is: the strength test behind production's
refusal of guessable keys, and the redaction of every value ``flask complete config`` prints.

Pure functions of values; :mod:`flask_complete.settings.config` turns the answers into problems.
"""

from __future__ import annotations

import functools
import math
import re
import string
import typing as t
from dataclasses import dataclass
from urllib.parse import unquote

from .schema import NOT_SECRET

if t.TYPE_CHECKING:
    from zxcvbn.matching import _Match

#: Fewer bytes than this is refused in production.
MIN_SECRET_BYTES = 32
#: A key estimated below this many bits is refused in production: ``secrets.token_hex(16)``,
#: ``token_urlsafe(24)`` and longer random keys estimate at 128 or more.
MIN_SECRET_BITS = 128
#: Bits the patterns found must save over drawing the characters at random before a key counts
#: as made of them. Random keys save some by chance (short words, keypad runs, dates among the
#: digits of a hex key): at most 33 bits in 6,000 random 32-character hex keys.
STRUCTURE_BITS = 48
#: What naming one pattern costs on top of its own guesses: which of the few kinds it is.
PATTERN_BITS = 3
#: Characters judged: enough for any key; keeps the quadratic pattern search cheap.
MAX_JUDGED = 128

#: The alphabets random keys are drawn from, smallest first: a key's characters are priced at
#: the smallest one holding them all (anything else: a byte, 8 bits).
_ALPHABETS = [
    frozenset(chars)
    for chars in (
        string.digits,
        string.digits + "abcdef",
        string.digits + "ABCDEF",
        string.ascii_lowercase,
        string.ascii_uppercase,
        string.ascii_lowercase + string.digits,
        string.ascii_uppercase + string.digits,
        string.ascii_letters,
        string.ascii_letters + string.digits,
        string.ascii_letters + string.digits + "-_",  # token_urlsafe
        string.ascii_letters + string.digits + "+/=",  # base64
        string.ascii_letters + string.digits + string.punctuation + " ",
    )
]
_SEPARATORS = frozenset(string.punctuation + string.whitespace)
_KINDS = {
    "dictionary": "dictionary word",
    "spatial": "keyboard run",
    "repeat": "repeat",
    "sequence": "sequence",
    "regex": "year",
    "date": "date",
}


@dataclass(frozen=True)
class Strength:
    """The estimate of :func:`strength`."""

    #: Estimated bits: how many guesses, as a power of two, finding the key would take.
    bits: float
    #: The kinds of pattern the estimate found the key made of, in order ("dictionary word",
    #: "keyboard run", "the app's name", ...); empty for a key judged random.
    patterns: tuple[str, ...]


def _text(value: str | bytes) -> str:
    if isinstance(value, str):
        return value
    try:
        return value.decode()
    except UnicodeDecodeError:
        return value.decode("latin-1")  # raw bytes: each one a character of the 256


def _alphabet(text: str) -> int:
    chars = set(text)
    return next((len(a) for a in _ALPHABETS if chars <= a), 256)


def strength(value: str | bytes, names: t.Iterable[str] = ()) -> Strength:
    """Estimate how many bits of guessing ``value`` takes, zxcvbn-style.

    Two ways to guess are compared. At random: every character drawn from the smallest common
    alphabet holding them (hex, base64, printable, bytes). By patterns: zxcvbn finds dictionary
    words (also reversed, capitalised or in l33t), keyboard runs, sequences, repeats, years and
    dates, and ``names`` (the app's name, its parts) as words of rank 1; the cheapest cover of
    the key by patterns and random characters is taken, a separator used again costing about
    one bit. When the patterns save :data:`STRUCTURE_BITS` or more, the key is made of them and
    their estimate counts; otherwise what they found is chance and the random estimate counts.

    zxcvbn is imported here, on first use: only production's checks judge keys.
    """
    from zxcvbn import matching, scoring

    text = _text(value)[:MAX_JUDGED]
    if not text:
        return Strength(0.0, ())
    per_char = math.log2(_alphabet(text))
    at_random = len(text) * per_char
    inputs = {n.lower() for name in names for n in (name, *re.split(r"[\W_]+", name)) if n}
    dictionaries = {
        **matching.RANKED_DICTIONARIES,
        "user_inputs": matching.build_ranked_dict(sorted(inputs)),
    }
    ending: list[list[_Match]] = [[] for _ in text]
    for match in matching.omnimatch(text, dictionaries):
        ending[match["j"]].append(match)
    # best[k]: the cheapest cover of text[:k]; via[k]: its last pattern (None: a character).
    best = [0.0] + [math.inf] * len(text)
    via: list[_Match | None] = [None] * (len(text) + 1)
    separators: list[str] = []
    for k, char in enumerate(text, 1):
        if char in separators:
            cost = math.log2(len(separators) + 1)  # "the same separator as before"
        else:
            cost = per_char
            if char in _SEPARATORS:
                separators.append(char)
        best[k], via[k] = best[k - 1] + cost, None
        for match in ending[k - 1]:
            bits = math.log2(scoring.estimate_guesses(match, text)) + PATTERN_BITS
            if best[match["i"]] + bits < best[k]:
                best[k], via[k] = best[match["i"]] + bits, match
    if at_random - best[-1] < STRUCTURE_BITS:
        return Strength(at_random, ())
    patterns = []
    k = len(text)
    while k:
        found = via[k]
        if found is None:
            k -= 1
            continue
        user = found.get("dictionary_name") == "user_inputs"
        patterns.append("the app's name" if user else _KINDS.get(found["pattern"], "pattern"))
        k = found["i"]
    return Strength(best[-1], tuple(reversed(patterns)))


def weakness(value: str | bytes, names: t.Iterable[str] = ()) -> str | None:
    """Why ``value`` is a guessable key (a phrase completing "the key ..."), or ``None``:
    estimated below :data:`MIN_SECRET_BITS` by :func:`strength`. Names no part of the key."""
    found = strength(value, names)
    if found.bits >= MIN_SECRET_BITS:
        return None
    if found.patterns:
        counts: dict[str, int] = {}
        for kind in found.patterns:
            counts[kind] = counts.get(kind, 0) + 1
        parts = [
            kind if kind.startswith("the ") else f"{n} {kind}s" if n > 1 else f"a {kind}"
            for kind, n in counts.items()
        ]
        made = f" (made of {', '.join(parts)})"
    else:
        made = ""
    return (
        f"is guessable: about {found.bits:.0f} bits by an estimate that counts dictionary words, "
        f"keyboard runs, repeats and the app's name for little{made}; production needs "
        f"{MIN_SECRET_BITS}"
    )


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
    # A "?" or "#" inside a password (redis://:0#x@host) looks like the end of the authority;
    # an "@" before the first "/" is still userinfo (over-hiding ?email=a@b there is the safe
    # side).
    return rest.split("/", 1)[0].rfind("@")


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
