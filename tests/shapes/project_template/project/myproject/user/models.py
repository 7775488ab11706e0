"""User models."""

import datetime as dt

from flask_login import UserMixin
from werkzeug.security import check_password_hash, generate_password_hash

from myproject.database import Column, PkModel, db, reference_col, relationship


class Role(PkModel):
    """A role for a user."""

    __tablename__ = "roles"
    name = Column(db.String(80), unique=True, nullable=False)
    user_id = reference_col("users", nullable=True)
    user = relationship("User", backref="roles")

    def __repr__(self):
        return f"<Role({self.name})>"


class User(UserMixin, PkModel):
    """A user of the app."""

    __tablename__ = "users"
    username = Column(db.String(80), unique=True, nullable=False)
    email = Column(db.String(80), unique=True, nullable=False)
    _password = Column("password", db.String(255), nullable=True)
    created_at = Column(db.DateTime, nullable=False, default=lambda: dt.datetime.now(dt.UTC))
    first_name = Column(db.String(30), nullable=True)
    last_name = Column(db.String(30), nullable=True)
    active = Column(db.Boolean(), default=False)
    is_admin = Column(db.Boolean(), default=False)

    @property
    def password(self):
        return self._password

    @password.setter
    def password(self, value):
        self._password = generate_password_hash(value, "pbkdf2:sha256:1000") if value else None

    def set_password(self, value):
        self.password = value

    def check_password(self, value):
        return self._password is not None and check_password_hash(self._password, value)

    @property
    def full_name(self):
        return f"{self.first_name} {self.last_name}"

    @property
    def is_active(self):
        return bool(self.active)

    def __repr__(self):
        return f"<User({self.username!r})>"
