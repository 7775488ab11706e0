"""The notes app's tests: only the fixtures of flask_complete's pytest plugin, no conftest."""

from __future__ import annotations

import json
import typing as t
import urllib.request

import pytest
from sqlalchemy import event, func, select

from example_app.models import Note, Notebook
from flask_complete.testing import walk_migrations


def test_create_notebook(auth_client: t.Any, db: t.Any) -> None:
    response = auth_client.post("/api/notebooks", json={"name": "Ideas"})
    assert response.status_code == 201
    assert db.session.scalar(select(Notebook.name)) == "Ideas"


def test_a_write_reads_nothing_after_its_commit(
    auth_client: t.Any, db: t.Any, notebook_factory: t.Any
) -> None:
    """The answer is built before the commit: a query after it could fail with the write
    stored, and no answer would then be right (a 503 would have the client write it again)."""
    notebook_id = notebook_factory(name="Inbox").id

    def after_commit(path: str, body: dict[str, str]) -> list[str]:
        """The statements ``POST path`` runs after its commit."""
        seen: list[str] = []

        def count(conn: t.Any, cursor: t.Any, statement: str, *args: t.Any) -> None:
            seen.append(statement)

        def start(session: t.Any) -> None:
            event.listen(db.engine, "before_cursor_execute", count)

        event.listen(db.session, "after_commit", start, once=True)
        try:
            response = auth_client.post(path, json=body)
            assert response.status_code == 201, response.json
        finally:
            event.remove(db.session, "after_commit", start)
            if event.contains(db.engine, "before_cursor_execute", count):
                event.remove(db.engine, "before_cursor_execute", count)
        return seen

    assert after_commit(f"/api/notebooks/{notebook_id}/notes", {"title": "Hi"}) == []
    assert after_commit("/api/notebooks", {"name": "Work"}) == []


def test_writing_needs_a_login(client: t.Any, db: t.Any) -> None:
    response = client.post("/api/notebooks", json={"name": "Ideas"})
    assert response.status_code == 401 and "Log in" in response.json["error"]
    assert db.session.scalar(select(func.count()).select_from(Notebook)) == 0


def test_every_test_starts_empty(db: t.Any) -> None:
    assert db.session.scalar(select(func.count()).select_from(Notebook)) == 0


def test_duplicate_name_is_a_conflict(auth_client: t.Any, notebook_factory: t.Any) -> None:
    notebook_factory(name="Ideas")
    response = auth_client.post("/api/notebooks", json={"name": "Ideas"})
    assert response.status_code == 409
    assert response.json == {"error": "A notebook named 'Ideas' exists."}


@pytest.mark.parametrize(
    "body", [None, {}, {"name": "  "}, {"name": 3}, {"name": "a\x00b"}, {"name": "x" * 101}]
)
def test_bad_input_is_a_clear_400(auth_client: t.Any, db: t.Any, body: t.Any) -> None:
    response = auth_client.post("/api/notebooks", json=body)
    assert response.status_code == 400
    assert "name" in response.json["error"] or "JSON" in response.json["error"]


def test_ids_beyond_the_column_are_404(client: t.Any) -> None:
    response = client.get(f"/api/notebooks/{2**31}/notes")
    assert response.status_code == 404 and response.is_json


def test_api_urls_no_route_matches_answer_json(client: t.Any) -> None:
    missing = client.get("/api/notebooks/1")
    assert missing.status_code == 404 and "not found" in missing.json["error"]
    wrong_method = client.put("/api/notebooks")
    assert wrong_method.status_code == 405 and "not allowed" in wrong_method.json["error"]
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_notes_of_a_notebook(client: t.Any, note_factory: t.Any, notebook_factory: t.Any) -> None:
    inbox = notebook_factory(name="Inbox")
    note_factory.create_batch(3, notebook=inbox)
    note_factory(notebook=notebook_factory(name="Other"))
    response = client.get(f"/api/notebooks/{inbox.id}/notes")
    assert [n["notebook_id"] for n in response.json] == [inbox.id] * 3


def test_delete_note(auth_client: t.Any, db: t.Any, note_factory: t.Any) -> None:
    note_id = note_factory().id
    assert auth_client.delete(f"/api/notes/{note_id}").status_code == 204
    assert db.session.get(Note, note_id) is None
    assert auth_client.delete(f"/api/notes/{note_id}").status_code == 404


def test_listing_notes_is_one_query_per_notebook(
    client: t.Any, note_factory: t.Any, notebook_factory: t.Any, assert_max_queries: t.Any
) -> None:
    inbox = notebook_factory(name="Inbox")
    note_factory.create_batch(5, notebook=inbox)
    with assert_max_queries(2):
        assert len(client.get(f"/api/notebooks/{inbox.id}/notes").json) == 5


def test_listing_notebooks_costs_the_same_queries_for_any_count(
    client: t.Any, note_factory: t.Any, notebook_factory: t.Any, assert_num_queries: t.Any
) -> None:
    for name, notes in (("Inbox", 3), ("Recipes", 0), ("Work", 2)):
        note_factory.create_batch(notes, notebook=notebook_factory(name=name))
    with assert_num_queries(1):
        listed = client.get("/api/notebooks").json
    assert [(n["name"], n["notes"]) for n in listed] == [("Inbox", 3), ("Recipes", 0), ("Work", 2)]
    with assert_num_queries(2):
        page = client.get("/").data
    assert page.count(b"<li>") == 6


def test_index_page(client: t.Any, notebook_factory: t.Any) -> None:
    notebook_factory(name="Recipes")
    assert b"Recipes" in client.get("/").data


def test_settings_override_is_undone(app: t.Any, settings: t.Any) -> None:
    settings["JSON_SORT_KEYS"] = True
    assert app.config["JSON_SORT_KEYS"] is True
    with pytest.raises(KeyError, match="read once"):
        settings["DATABASE_URL"] = "sqlite://"


def test_runs_in_testing(app: t.Any, runner: t.Any) -> None:
    assert app.testing
    assert app.extensions["complete"].env == "testing"
    assert app.config["SQLALCHEMY_DATABASE_URI"].rpartition("/")[2].startswith("test_")
    assert runner.invoke(args=["db", "--help"]).exit_code == 0


def test_over_http(live_server: t.Any, transactional_db: t.Any) -> None:
    from flask_complete.auth.testing import bearer_headers, create_user

    headers = bearer_headers(create_user())
    transactional_db.session.commit()
    request = urllib.request.Request(
        f"{live_server.url}/api/notebooks",
        data=json.dumps({"name": "Live"}).encode(),
        headers={"Content-Type": "application/json", **headers},
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 201
    assert transactional_db.session.scalar(select(Notebook.name)) == "Live"


def test_migrations_walk_up_and_down(app: t.Any, transactional_db: t.Any) -> None:
    assert walk_migrations(app)
    assert transactional_db.session.scalar(select(func.count()).select_from(Notebook)) == 0


def test_me_when_logged_in(auth_client: t.Any, auth_user: t.Any) -> None:
    response = auth_client.get("/auth/me")
    assert response.status_code == 200
    assert auth_user.email in response.get_data(as_text=True)


def test_login_fixture_logs_in_any_user(client: t.Any, login: t.Any, db: t.Any) -> None:
    from flask_complete.auth.testing import create_user

    assert client.get("/auth/me").status_code == 401
    login(create_user(email="ann@example.test"))
    assert "ann@example.test" in client.get("/auth/me").get_data(as_text=True)
