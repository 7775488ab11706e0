"""Examples for the command line reference, shown under each command of ``docs/cli.rst``.

Keyed by the command's path as ``flask`` spells it. Every command flask_complete defines has an
entry, and every line parses as a real command (tests/test_docs_cli.py checks both). Each entry
is a list of ``(command, what it does)``.
"""

from __future__ import annotations

EXAMPLES: dict[str, list[tuple[str, str]]] = {
    "flask complete check": [
        ("flask complete check", "the checks of this environment; exit 1 on an error"),
        ("FLASK_ENV=production flask complete check --deploy", "before a deploy"),
        ("flask complete check --format json", "for CI"),
    ],
    "flask complete config": [
        ("flask complete config", "every setting in use, its value and its source"),
        ("flask complete config --all", "also the defaults of pieces that do nothing"),
        ("flask complete config DATABASE_URL", "one value, secrets hidden"),
        ("FLASK_ENV=production flask complete config", "what production reads, even refused"),
    ],
    "flask complete credentials edit": [
        ("flask complete credentials edit --env production", "open $EDITOR on the file"),
    ],
    "flask complete credentials rotate": [
        ("flask complete credentials rotate --env production", "a new key, same values"),
    ],
    "flask complete credentials show": [
        ("flask complete credentials show --env production", "names, values hidden"),
    ],
    "flask complete init": [
        ("flask --app myapp complete init", "settings, secrets and migrations/ for an app"),
    ],
    "flask complete new": [
        ("flask complete new blog", "a project in ./blog with SQLite"),
        ("flask complete new shop --database postgresql", "the same on PostgreSQL"),
    ],
    "flask complete versions": [
        ("flask complete versions --check", "exit 1 outside the tested ranges"),
    ],
    "flask db check": [
        ("flask db check", "in CI: fail when a migration is missing or not applied"),
    ],
    "flask db create": [
        ("flask db create", "this environment's database (and every bind's)"),
        ("flask db create --bind reports", "only the reports bind"),
    ],
    "flask db drop": [
        ("flask db drop --yes", "delete this environment's database"),
    ],
    "flask db dump": [
        ("flask db dump Notebook -o fixtures/notebooks.json", "one model's rows, to a file"),
    ],
    "flask db environment": [
        ("flask db environment", "which environment each database belongs to"),
        ("flask db environment testing", "stamp a database made by hand as a test database"),
    ],
    "flask db init": [
        ("flask db init", "migrations/ from flask_complete's template"),
    ],
    "flask db load": [
        ("flask db load notebooks --dry-run", "what fixtures/notebooks.json would change"),
        ("flask db load notebooks", "load it"),
    ],
    "flask db migrate": [
        ('flask db migrate -m "add notebooks"', "a migration from the models' changes"),
    ],
    "flask db upgrade": [
        ("flask db upgrade", "apply the migrations"),
    ],
    "flask db downgrade": [
        ("flask db downgrade", "undo the last one"),
    ],
    "flask db prepare": [
        ("flask db prepare", "create if missing, upgrade, seed when new: deploys and checkouts"),
    ],
    "flask db reset": [
        ("flask db reset --yes", "start development over: drop, create, upgrade, seed"),
    ],
    "flask db seed": [
        ("flask db seed", "run this environment's SEEDS"),
    ],
    "flask db server start": [
        ("flask db server start", "the embedded PostgreSQL, ahead of the first connection"),
    ],
    "flask db server status": [
        ("flask db server status", "its PID, socket, data folder and psql command; exit 3 if down"),
    ],
    "flask db server stop": [
        ("flask db server stop", "stop it; the next connection starts it again"),
    ],
    "flask users activate": [
        ("flask users activate ann@example.com", "logins work again"),
    ],
    "flask users create": [
        ("flask users create ann@example.com --admin", "asks for the password twice"),
    ],
    "flask users deactivate": [
        ("flask users deactivate ann@example.com", "ends every session and token"),
    ],
    "flask users delete": [
        ("flask users delete ann@example.com --yes", "with her tokens and sessions"),
    ],
    "flask users list": [
        ("flask users list", "each user: active or not, admin, last login"),
    ],
    "flask users revoke-token": [
        ("flask users revoke-token 3", "an id from flask users tokens"),
    ],
    "flask users sessions": [
        ("flask users sessions ann@example.com", "her logins"),
        ("flask users sessions ann@example.com --revoke-all", "log her out everywhere"),
    ],
    "flask users set-password": [
        ("flask users set-password ann@example.com", "asks for it; ends her other sessions"),
    ],
    "flask users token": [
        ('flask users token ann@example.com --name "ci deploy" --expires-in 30', "printed once"),
    ],
    "flask users tokens": [
        ("flask users tokens ann@example.com", "ids, names, state, expiry; never the secret"),
    ],
}


#: What each argument of flask_complete's commands is, by ``"<command path> <ARGUMENT>"``.
ARGUMENTS: dict[str, str] = {
    "flask complete config NAME": "One setting to print, in any case (``database_url``); "
    "a misspelt name gets a suggestion. Without it: the whole table.",
    "flask complete new NAME": "The project's folder and package name: a free Python name.",
    "flask db dump [MODEL]...": "Model class names (``Notebook``); default: every model.",
    "flask db environment ENV": "Stamp the database with this environment; without it: show.",
    "flask db load FILE...": "Fixture files, or names under ``fixtures/`` (``notebooks``).",
    "flask users revoke-token TOKEN_ID": "The id ``flask users tokens EMAIL`` lists.",
    **{
        f"flask users {command} EMAIL": "The user's login (the email the user signs in with)."
        for command in (
            "activate",
            "create",
            "deactivate",
            "delete",
            "sessions",
            "set-password",
            "token",
            "tokens",
        )
    },
}


def argument_lines(path: str, lines: list[str]) -> list[str]:
    """sphinx-click's lines for the arguments of ``path``, each with what it is."""
    out: list[str] = []
    name = ""
    for line in lines:
        out.append(line)
        if line.startswith(".. option:: "):
            name = line.removeprefix(".. option:: ").strip()
        elif line.strip().endswith(("argument", "argument(s)")) and name:
            said = ARGUMENTS.get(f"{path} {name}")
            if said:
                out += ["", f"    {said}"]
    return out


def example_lines(path: str) -> list[str]:
    """The reST under the command ``path``: a heading line and a console block."""
    found = EXAMPLES.get(path)
    if not found:
        return []
    width = max(len(command) for command, _ in found)
    lines = ["", "**Examples**", "", ".. code-block:: console", ""]
    lines += [f"    $ {command:<{width}}  # {what}" for command, what in found]
    return [*lines, ""]
