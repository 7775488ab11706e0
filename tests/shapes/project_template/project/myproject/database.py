"""Database module, including the SQLAlchemy database object and DB-related utilities."""

from .extensions import db

Column = db.Column
relationship = db.relationship


class CRUDMixin:
    """Mixin that adds convenience methods for CRUD (create, read, update, delete) operations."""

    @classmethod
    def create(cls, **kwargs):
        """Create a new record and save it the database."""
        instance = cls(**kwargs)
        return instance.save()

    def update(self, commit=True, **kwargs):
        """Update specific fields of a record."""
        for attr, value in kwargs.items():
            setattr(self, attr, value)
        if commit:
            return self.save()
        return self

    def save(self, commit=True):
        """Save the record."""
        db.session.add(self)
        if commit:
            db.session.commit()
        return self

    def delete(self, commit=True):
        """Remove the record from the database."""
        db.session.delete(self)
        if commit:
            return db.session.commit()
        return None


class Model(CRUDMixin, db.Model):
    """Base model class that includes CRUD convenience methods."""

    __abstract__ = True


class PkModel(Model):
    """Base model class that includes CRUD convenience methods, plus adds a 'primary key' column
    named ``id``."""

    __abstract__ = True
    id = Column(db.Integer, primary_key=True)

    @classmethod
    def get_by_id(cls, record_id):
        """Get record by ID."""
        if (isinstance(record_id, str) and record_id.isdigit()) or isinstance(
            record_id, int | float
        ):
            return db.session.get(cls, int(record_id))
        return None


def reference_col(tablename, nullable=False, pk_name="id", foreign_key_kwargs=None, **kwargs):
    """Column that adds primary key foreign key reference."""
    return Column(
        db.ForeignKey(f"{tablename}.{pk_name}", **(foreign_key_kwargs or {})),
        nullable=nullable,
        **kwargs,
    )
