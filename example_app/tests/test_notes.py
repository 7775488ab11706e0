"""The notes app's tests: only the fixtures of flask_complete's pytest plugin, no conftest."""

from __future__ import annotations

import json
import re
import typing as t
import urllib.request

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, select

from example_app.models import Note, Notebook
from flask_complete.testing import walk_migrations


def test_create_notebook(auth_client: t.Any, db: t.Any) -> None:
    response = auth_client.post("/api/notebooks", json={"name": "Ideas"})
    assert response.status_code == 201
    assert db.session.scalar(select(Notebook.name)) == "Ideas"


def test_a_write_reads_nothing_after_its_commit(
    auth_client: t.Any, auth_user: t.Any, db: t.Any, notebook_factory: t.Any
) -> None:
    """The answer is built before the commit: a query after it could fail with the write
    stored, and no answer would then be right (a 503 would have the client write it again)."""
    notebook_id = notebook_factory(name="Inbox", owner=auth_user).id

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


def test_duplicate_name_is_a_conflict(
    auth_client: t.Any, auth_user: t.Any, notebook_factory: t.Any
) -> None:
    notebook_factory(name="Ideas", owner=auth_user)
    response = auth_client.post("/api/notebooks", json={"name": "Ideas"})
    assert response.status_code == 409
    assert response.json == {"error": "A notebook named 'Ideas' exists."}
    # Another user's notebook of that name is no conflict (nor is it seen).
    notebook_factory(name="Work")
    assert auth_client.post("/api/notebooks", json={"name": "Work"}).status_code == 201


@pytest.mark.parametrize(
    "body", [None, {}, {"name": "  "}, {"name": 3}, {"name": "a\x00b"}, {"name": "x" * 101}]
)
def test_bad_input_is_a_clear_400(auth_client: t.Any, db: t.Any, body: t.Any) -> None:
    response = auth_client.post("/api/notebooks", json=body)
    assert response.status_code == 400
    assert "name" in response.json["error"] or "JSON" in response.json["error"]


#: Every URL with an id.
ID_URLS = ("/api/notebooks/{}", "/api/notebooks/{}/notes", "/api/notes/{}")
METHODS = ("GET", "POST", "PATCH", "PUT", "DELETE")


@settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    number=st.integers(min_value=2**31) | st.just(0),
    url=st.sampled_from(ID_URLS),
    method=st.sampled_from(METHODS),
)
def test_ids_beyond_the_column_answer_as_absent_ones(
    auth_client: t.Any, number: int, url: str, method: str
) -> None:
    """An id no row can have answers as an id no row has: 404 for every method the URL
    serves (never a 405 because another rule of the URL takes another method, never an
    overflow in the database), and the URL's own 405 for the others."""
    absent = auth_client.open(url.format(2**31 - 1), method=method, json={"title": "x"})
    response = auth_client.open(url.format(number), method=method, json={"title": "x"})
    assert absent.status_code in (404, 405), (url, method, absent.json)
    assert response.status_code == absent.status_code, (url, method, response.json)
    assert response.is_json


def test_a_post_to_an_id_beyond_the_column_is_404(auth_client: t.Any) -> None:
    response = auth_client.post("/api/notebooks/99999999999/notes", json={"title": "x"})
    assert response.status_code == 404, response.json


def test_another_user_s_rows_are_404(
    auth_client: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    theirs = note_factory(notebook=notebook_factory(name="Private"))
    book = theirs.notebook_id
    for method, path in (
        ("GET", f"/api/notebooks/{book}/notes"),
        ("POST", f"/api/notebooks/{book}/notes"),
        ("DELETE", f"/api/notebooks/{book}"),
        ("GET", f"/api/notes/{theirs.id}"),
        ("PATCH", f"/api/notes/{theirs.id}"),
        ("DELETE", f"/api/notes/{theirs.id}"),
    ):
        answer = auth_client.open(path, method=method, json={"title": "mine now"})
        assert answer.status_code == 404 and "No such" in answer.json["error"], (method, path)
    assert auth_client.get("/api/notebooks").json == []
    assert theirs.title != "mine now"


def test_one_note_read_changed_and_deleted(
    auth_client: t.Any, auth_user: t.Any, db: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    inbox = notebook_factory(name="Inbox", owner=auth_user)
    work = notebook_factory(name="Work", owner=auth_user)
    note = note_factory(notebook=inbox, title="Draft")
    note_id = note.id
    assert auth_client.get(f"/api/notes/{note.id}").json["title"] == "Draft"
    changed = auth_client.patch(
        f"/api/notes/{note.id}", json={"title": " Final ", "notebook_id": work.id}
    )
    assert changed.status_code == 200, changed.json
    assert (changed.json["title"], changed.json["notebook_id"]) == ("Final", work.id)
    elsewhere = notebook_factory(name="Theirs")
    moved = auth_client.patch(f"/api/notes/{note.id}", json={"notebook_id": elsewhere.id})
    assert moved.status_code == 404
    assert auth_client.patch(f"/api/notes/{note.id}", json={"title": ""}).status_code == 400
    assert auth_client.delete(f"/api/notes/{note_id}").status_code == 204
    assert auth_client.get(f"/api/notes/{note_id}").status_code == 404


def test_delete_a_notebook_with_its_notes(
    auth_client: t.Any, auth_user: t.Any, db: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    inbox = notebook_factory(name="Inbox", owner=auth_user)
    note_factory.create_batch(2, notebook=inbox)
    inbox_id = inbox.id
    assert auth_client.delete(f"/api/notebooks/{inbox_id}").status_code == 204
    assert db.session.scalar(select(func.count()).select_from(Note)) == 0
    assert auth_client.delete(f"/api/notebooks/{inbox_id}").status_code == 404


def test_api_urls_no_route_matches_answer_json(client: t.Any) -> None:
    missing = client.get("/api/nothing/1")
    assert missing.status_code == 404 and "not found" in missing.json["error"]
    wrong_method = client.put("/api/notebooks")
    assert wrong_method.status_code == 405 and "not allowed" in wrong_method.json["error"]
    page = client.get("/no-such-page")
    assert page.status_code == 404 and page.mimetype == "text/html"


def test_notes_of_a_notebook(
    auth_client: t.Any, auth_user: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    inbox = notebook_factory(name="Inbox", owner=auth_user)
    note_factory.create_batch(3, notebook=inbox)
    note_factory(notebook=notebook_factory(name="Other", owner=auth_user))
    response = auth_client.get(f"/api/notebooks/{inbox.id}/notes")
    assert [n["notebook_id"] for n in response.json] == [inbox.id] * 3


def test_delete_note(
    auth_client: t.Any, auth_user: t.Any, db: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    note_id = note_factory(notebook=notebook_factory(owner=auth_user)).id
    assert auth_client.delete(f"/api/notes/{note_id}").status_code == 204
    assert db.session.get(Note, note_id) is None
    assert auth_client.delete(f"/api/notes/{note_id}").status_code == 404


def test_listing_notes_is_one_query_per_notebook(
    auth_client: t.Any,
    auth_user: t.Any,
    note_factory: t.Any,
    notebook_factory: t.Any,
    assert_max_queries: t.Any,
) -> None:
    inbox = notebook_factory(name="Inbox", owner=auth_user)
    note_factory.create_batch(5, notebook=inbox)
    # The user (with the login's record), the notebook, its notes.
    with assert_max_queries(3):
        assert len(auth_client.get(f"/api/notebooks/{inbox.id}/notes").json) == 5


def test_listing_notebooks_costs_the_same_queries_for_any_count(
    auth_client: t.Any,
    auth_user: t.Any,
    note_factory: t.Any,
    notebook_factory: t.Any,
    assert_num_queries: t.Any,
) -> None:
    for name, notes in (("Inbox", 3), ("Recipes", 0), ("Work", 2)):
        note_factory.create_batch(notes, notebook=notebook_factory(name=name, owner=auth_user))
    note_factory.create_batch(4, notebook=notebook_factory(name="Someone else's"))
    # The user, then the notebooks with their counts.
    with assert_num_queries(2):
        listed = auth_client.get("/api/notebooks").json
    assert [(n["name"], n["notes"]) for n in listed] == [("Inbox", 3), ("Recipes", 0), ("Work", 2)]
    with assert_num_queries(3):
        page = auth_client.get("/").data
    assert len(re.findall(rb"<li[ >]", page)) == 6


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
