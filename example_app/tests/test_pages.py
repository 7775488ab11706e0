"""The notes app's pages: a person's own notebooks and notes, through forms with CSRF tokens."""

from __future__ import annotations

import re
import typing as t

import pytest
from sqlalchemy import func, select

from example_app.models import Note, Notebook

BROWSER = {"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"}
_TOKEN = re.compile(rb'name="csrf_token" value="([^"]+)"')


@pytest.fixture
def person(client: t.Any, login: t.Any, auth_user: t.Any) -> t.Any:
    """A browser logged in as ``auth_user``, sending no CSRF header: only its forms' tokens."""
    login(auth_user)
    client.environ_base.pop("HTTP_X_CSRF_TOKEN", None)
    return client


def send(client: t.Any, page: str, action: str, **fields: str) -> t.Any:
    """Open ``page`` and post ``fields`` to ``action`` with the page's CSRF token."""
    found = _TOKEN.search(client.get(page, headers=BROWSER).data)
    assert found is not None
    return client.post(
        action, data={"csrf_token": found.group(1).decode(), **fields}, headers=BROWSER
    )


def test_a_visitor_is_welcomed_and_sent_to_log_in(client: t.Any) -> None:
    assert b"Log in</a>" in client.get("/", headers=BROWSER).data
    sent = client.get("/notebooks/1", headers=BROWSER)
    assert sent.status_code == 302 and sent.headers["Location"].startswith("/auth/login?next=")


def test_the_login_page_is_framed_by_the_app_s_layout(client: t.Any) -> None:
    page = client.get("/auth/login", headers=BROWSER).data
    assert b"<title>Log in \xc2\xb7 Notes</title>" in page and b"style.css" in page


def test_create_edit_and_delete_through_the_pages(person: t.Any, db: t.Any) -> None:
    made = send(person, "/", "/notebooks", name="Recipes")
    assert made.status_code == 303
    book = db.session.scalar(select(Notebook).where(Notebook.name == "Recipes"))
    page = f"/notebooks/{book.id}"
    assert made.headers["Location"] == page
    added = send(person, page, f"{page}/notes", title="Soup", body="Leeks\nPotatoes")
    assert added.status_code == 303
    note = db.session.scalar(select(Note))
    assert (note.title, note.body) == ("Soup", "Leeks\nPotatoes")
    assert b"Soup" in person.get("/", headers=BROWSER).data
    edited = send(person, f"/notes/{note.id}", f"/notes/{note.id}", title="Leek soup", body="")
    assert edited.status_code == 303
    db.session.refresh(note)
    assert note.title == "Leek soup"
    assert send(person, page, f"/notes/{note.id}/delete").status_code == 303
    assert send(person, page, f"{page}/delete").status_code == 303
    assert db.session.scalar(select(func.count()).select_from(Notebook)) == 0


def test_bad_input_shows_the_form_again(person: t.Any) -> None:
    answer = send(person, "/", "/notebooks", name="   ")
    assert answer.status_code == 400 and b"is required" in answer.data


def test_a_form_without_its_token_is_refused(person: t.Any, db: t.Any) -> None:
    refused = person.post("/notebooks", data={"name": "Sneaky"}, headers=BROWSER)
    assert refused.status_code == 403 and refused.mimetype == "text/html"
    assert b"CSRF token missing" in refused.data
    assert db.session.scalar(select(func.count()).select_from(Notebook)) == 0


def test_another_user_s_pages_are_404(
    person: t.Any, note_factory: t.Any, notebook_factory: t.Any
) -> None:
    theirs = note_factory(notebook=notebook_factory(name="Private"))
    for path in (f"/notebooks/{theirs.notebook_id}", f"/notes/{theirs.id}"):
        page = person.get(path, headers=BROWSER)
        assert page.status_code == 404 and b"No such" in page.data, path
    deleted = send(person, "/", f"/notes/{theirs.id}/delete")
    assert deleted.status_code == 404
    assert b"Private" not in person.get("/", headers=BROWSER).data


def test_unknown_pages_get_the_app_s_404(client: t.Any) -> None:
    page = client.get("/no-such-page", headers=BROWSER)
    assert page.status_code == 404 and b"Back to your notebooks" in page.data


def test_a_failing_page_gets_the_app_s_500_without_the_cause(tmp_path: t.Any) -> None:
    from example_app import create_app

    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'e.sqlite3'}",
            "PROPAGATE_EXCEPTIONS": False,
        }
    )

    @app.get("/boom")
    def boom() -> t.Any:
        raise RuntimeError("secret internals")

    page = app.test_client().get("/boom", headers=BROWSER)
    assert page.status_code == 500 and b"Internal Server Error" in page.data
    assert b"secret internals" not in page.data


def test_the_demo_login_is_shown_in_development_only(client: t.Any, app: t.Any) -> None:
    from example_app.seeds import DEMO_EMAIL

    assert DEMO_EMAIL.encode() not in client.get("/", headers=BROWSER).data
    app.config["COMPLETE_ENV"] = "development"
    try:
        assert DEMO_EMAIL.encode() in client.get("/", headers=BROWSER).data
    finally:
        app.config["COMPLETE_ENV"] = "testing"
