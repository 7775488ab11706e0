"""The deprecation policy's warning: its own class, public, an error in this suite."""

from __future__ import annotations

import warnings

import pytest

import flask_complete
from flask_complete.deprecation import FlaskCompleteDeprecationWarning, renamed


def test_the_class_is_public_and_a_deprecation_warning() -> None:
    assert flask_complete.FlaskCompleteDeprecationWarning is FlaskCompleteDeprecationWarning
    assert "FlaskCompleteDeprecationWarning" in flask_complete.__all__
    assert issubclass(FlaskCompleteDeprecationWarning, DeprecationWarning)


def test_the_suite_runs_with_it_as_an_error(pytestconfig: pytest.Config) -> None:
    filters = pytestconfig.getini("filterwarnings")
    assert "error::flask_complete.FlaskCompleteDeprecationWarning" in filters
    config = {"OLD_NAME": 1}
    with pytest.raises(FlaskCompleteDeprecationWarning, match="OLD_NAME in the settings"):
        renamed(config, "OLD_NAME", "NEW_NAME", "0.3")


def test_a_renamed_setting_moves_and_warns_naming_the_replacement() -> None:
    def init_app(config: dict[str, int]) -> None:  # flask_complete's code calls it
        renamed(config, "OLD_NAME", "NEW_NAME", "0.3")
        renamed(config, "ABSENT", "OTHER", "0.3")

    config = {"OLD_NAME": 1, "KEPT": 2}
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        init_app(config)
    assert config == {"NEW_NAME": 1, "KEPT": 2}
    [warning] = caught
    assert warning.category is FlaskCompleteDeprecationWarning
    assert str(warning.message) == (
        "OLD_NAME in the settings is renamed to NEW_NAME; OLD_NAME stops working in "
        "flask_complete 0.3. Rename it."
    )
    assert warning.filename == __file__  # the user's line, not flask_complete's
    # A value already under the new name wins.
    both = {"OLD_NAME": 1, "NEW_NAME": 5}
    with pytest.warns(FlaskCompleteDeprecationWarning):
        renamed(both, "OLD_NAME", "NEW_NAME", "0.3")
    assert both == {"NEW_NAME": 5}
