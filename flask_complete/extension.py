"""The :class:`Complete` extension: one ordered ``init_app`` for every piece."""

from __future__ import annotations

import copy
import os
import typing as t
from pathlib import Path

from flask import Flask

from . import hooks, routing
from . import state as _state
from .settings import config as _config
from .settings import environment as _environment
from .settings.config import ConfigError, Settings
from .state import EXTENSION_KEY, CompleteState, get_state

__all__ = ["EXTENSION_KEY", "Complete", "CompleteState", "collecting", "get_state"]

if t.TYPE_CHECKING:
    from flask_sqlalchemy import SQLAlchemy


class Complete:
    """Configuration, database, migrations, auth, CORS and CLI for a Flask app, in one call.

    :param app: Initialise this app now; or call :meth:`init_app` later from a factory.
    :param db: A ``SQLAlchemy`` instance the app already has (bound or not). Default: the one
        found in ``app.extensions``, else :data:`flask_complete.db`.
    :param user_model: The user model for auth; without one the auth piece stays inert.
    :param env: Pin the app to an environment instead of reading ``FLASK_ENV``.
    :param root: The folder holding ``settings.toml``; default: found from ``app.root_path``.
    :param env_var: The app's own variable that names its environment (``"FLASK_CONFIG"``),
        read instead of ``FLASK_ENV``; the pytest plugin still pins testing.
    :param env_names: The app's values of ``env_var`` that are no environment's name, each
        mapped to one (``{"default": "development"}``); ``dev``, ``test`` and ``prod`` are known.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: SQLAlchemy | None = None,
        user_model: type[t.Any] | None = None,
        env: str | None = None,
        root: str | os.PathLike[str] | None = None,
        env_var: str | None = None,
        env_names: t.Mapping[str, str] | None = None,
    ) -> None:
        self.db = db
        self.user_model = user_model
        self.env = env
        self.root = root
        self.env_var = env_var
        self.env_names = dict(_environment.env_names(env_names))
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask, *, collect: bool = False) -> None:
        """Load settings, then bind the database, migrations, auth, CORS and commands.

        :param collect: Record refusals in the state instead of raising (used by ``flask
            complete check`` to report everything at once).
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "flask_complete is already initialised on this app. Call Complete(app) or "
                "complete.init_app(app) once per app."
            )
        collect = collect or _state.collecting
        selection = _config.select_env(self.env, self.env_var, self.env_names)
        env = selection.env
        root = Path(self.root).resolve() if self.root else _config.find_root(app.root_path)
        try:
            settings = _config.load(app, env=env, root=root)
        except ConfigError as e:
            if not collect:
                raise
            settings = Settings(env=env, root=root, values={}, sources={}, code={})
            settings.problems = list(e.problems)
        settings.root_given = self.root is not None
        _config.apply(app, settings)
        settings.sources["COMPLETE_ENV"] = selection.source or "flask_complete default"
        if not selection.source:
            _report_mismatch(app, settings)
        _config.fill_secret(app, settings)

        before = dict(app.config)
        sqla, bound = self._find_db(app)
        state = CompleteState(
            env=env,
            root=root,
            settings=settings,
            db=sqla,
            db_bound_before=bound,
            user_model=self.user_model,
            # Refusals; the warnings among the settings' problems were logged by load().
            problems=[p for p in settings.problems if p.level == "error"],
        )
        app.extensions[EXTENSION_KEY] = state
        state.migrations_dir = root / str(app.config.get("MIGRATIONS_DIR", "migrations"))
        if env == "production":
            from .checks import rules as checks

            # The same gate as `flask complete check`: errors refused, warnings logged.
            state.problems += checks.start_up(app, state, quiet=collect)
        if bound:
            state.notes.append(
                "The SQLAlchemy instance was bound to the app before Complete: its URL and pool "
                "settings are its own. Pass it unbound (db = SQLAlchemy(); Complete(app, db=db)) "
                "to have them configured."
            )
        if app.config.get("COMPLETE_DATABASE", True) and sqla is not None:
            from .database import engines as database

            database.init_app(app, state)
            if not state.problems and "sqlalchemy" in app.extensions:
                from .database import capacity

                capacity.init_app(app, sqla)
        if state.problems and not collect:
            del app.extensions[EXTENSION_KEY]
            raise ConfigError(state.problems)

        rule_class = app.url_rule_class
        if routing.wanted(app) and hooks.usable("werkzeug.routing.Rule._compile_builder"):
            routing.init_app(app)
        self._init_pieces(app, state)
        if state.problems and not collect:
            # A piece refused (e.g. CORS "*" with credentials): nothing half-starts.
            del app.extensions[EXTENSION_KEY]
            app.url_rule_class = rule_class
            raise ConfigError(state.problems)
        _record_computed(app.config, before, settings.sources)
        state.init_values = {
            k: copy.deepcopy(v) for k, v in app.config.items() if _config.is_init_time_key(k)
        }
        if env == "production":
            # Flask's CLI sets app.debug after the factory returns, and app.run(debug=True)
            # comes later still: a request hook refuses what start-up could not see.
            checks.guard_debug(app)

    def _find_db(self, app: Flask) -> tuple[SQLAlchemy | None, bool]:
        if not app.config.get("COMPLETE_DATABASE", True):
            return self.db or app.extensions.get("sqlalchemy"), False
        existing = app.extensions.get("sqlalchemy")
        if self.db is not None:
            if existing is not None and existing is not self.db:
                raise RuntimeError(
                    "Complete(db=...) was given a different SQLAlchemy instance from the one "
                    "already registered on the app. Pass the instance the app uses."
                )
            return self.db, existing is not None
        if existing is not None:
            return existing, True
        from .database.engines import db

        return db, False

    def _init_pieces(self, app: Flask, state: CompleteState) -> None:
        # Each piece is imported only when its setting is on: a disabled piece costs nothing.
        if app.config.get("COMPLETE_MIGRATE", True) and state.db is not None:
            from .migrations import migrate as migrations

            migrations.init_app(app, state)
        if app.config.get("COMPLETE_AUTH", True):
            from . import auth

            auth.init_app(app, state)
        if app.config.get("COMPLETE_CORS", True):
            from .web import cors

            cors.init_app(app, state)
        if app.config.get("HEALTH_ENDPOINT"):
            from .web import health

            health.init_app(app, state)
        from . import cli

        cli.init_app(app, state)


def _report_mismatch(app: Flask, settings: Settings) -> None:
    """Nothing named the environment, so it is development: say so when the app's own config
    looks like production (logged now, listed by ``flask complete check``)."""
    problem = _environment.mismatch(app.config, settings.code, os.environ)
    if problem is not None:
        settings.problems.append(problem)
        _config.logger.warning("[%s] %s %s", problem.id, problem.message, problem.fix)


def _record_computed(
    config: t.Mapping[str, t.Any], before: t.Mapping[str, t.Any], sources: dict[str, str]
) -> None:
    """Name the source of each value the pieces wrote: a library's default, or one computed from
    the bundle's settings (engine options per dialect, over what the app gave)."""
    missing = object()
    for key, value in config.items():
        old = before.get(key, missing)
        if old is value or (old is not missing and _equal(old, value)):
            continue
        prior = sources.get(key)
        if prior is None and old is missing and _config.LIBRARY_DEFAULTS.get(key, missing) == value:
            sources[key] = "Flask-SQLAlchemy default"
        elif prior is None:
            sources[key] = "flask_complete (computed at init from its settings)"
        elif isinstance(old, dict) and isinstance(value, dict) and value.keys() - old.keys():
            # Our defaults under the app's own options: both are in the value.
            sources[key] = f"flask_complete (computed at init from its settings, over {prior})"


def _equal(a: t.Any, b: t.Any) -> bool:
    try:
        return bool(a == b)
    except Exception:  # a value whose == is no boolean (an array): not ours to judge
        return True


def collecting(on: bool) -> None:
    """Make every ``init_app`` collect refusals instead of raising (``flask complete check``)."""
    _state.collecting = on
