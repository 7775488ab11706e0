"""Flask-SQLAlchemy's extension class, able to build a ``MappedAsDataclass`` base on SQLAlchemy 2.1.

Flask-SQLAlchemy 3.1.1 makes ``db.Model`` by creating a new class with the namespace of the
``model_class`` it is given copied in. SQLAlchemy 2.1 turns a ``MappedAsDataclass`` declarative
base into a dataclass itself, so the copied namespace already holds the dataclass fields and
SQLAlchemy refuses the new class ("is already a dataclass"; pallets-eco/flask-sqlalchemy#1420).
:class:`SQLAlchemy` hands Flask-SQLAlchemy the base without those two dataclass attributes for
the time of the call, so the new class becomes a dataclass of its own; the user's base is
unchanged afterwards. Without the problem (SQLAlchemy 2.0, a base that is no dataclass) it does
nothing.
"""

from __future__ import annotations

import typing as t

from flask_sqlalchemy import SQLAlchemy as _FlaskSQLAlchemy
from sqlalchemy.orm import MappedAsDataclass

__all__ = ["SQLAlchemy"]

#: What :func:`dataclasses.dataclass` records on a class; SQLAlchemy 2.1 refuses a new class
#: whose own namespace already holds them.
_DATACLASS_MARKS = ("__dataclass_fields__", "__dataclass_params__")


class SQLAlchemy(_FlaskSQLAlchemy):
    """:class:`flask_sqlalchemy.SQLAlchemy`, taking a ``MappedAsDataclass`` base as
    ``model_class`` on SQLAlchemy 2.0 and 2.1 alike.

    .. versionadded:: 0.1.0
    """

    def __init__(self, *args: t.Any, **kwargs: t.Any) -> None:
        model_class = kwargs.get("model_class")
        if not _dataclass_base(model_class):
            super().__init__(*args, **kwargs)
            return
        base = t.cast(type, model_class)
        marks = {name: base.__dict__[name] for name in _DATACLASS_MARKS if name in base.__dict__}
        for name in marks:
            delattr(base, name)
        try:
            super().__init__(*args, **kwargs)
        finally:
            for name, value in marks.items():
                setattr(base, name, value)


def _dataclass_base(model_class: t.Any) -> bool:
    """Whether ``model_class`` is a ``MappedAsDataclass`` base that is a dataclass itself (as
    SQLAlchemy 2.1 makes it)."""
    return (
        isinstance(model_class, type)
        and issubclass(model_class, MappedAsDataclass)
        and "__dataclass_fields__" in model_class.__dict__
    )
