from flask import Blueprint, jsonify, request
from sqlalchemy import select

from .models import Entry, db

bp = Blueprint("entries", __name__)


@bp.get("/entries")
def index():
    entries = db.session.scalars(select(Entry).order_by(Entry.id)).all()
    return jsonify([{"name": e.name, "message": e.message} for e in entries])


@bp.post("/entries")
def create():
    data = request.get_json()
    if not data or not data.get("name") or not data.get("message"):
        return jsonify(error="name and message are required"), 400
    db.session.add(Entry(name=data["name"], message=data["message"]))
    db.session.commit()
    return jsonify(ok=True), 201
