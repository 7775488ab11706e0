"""A real headless Chromium: pages on one loopback origin call the example app's API on another.

What is asserted is what the page's JavaScript could read. Needs Debian's ``chromium`` and
``chromium-driver`` (``.ci/install-browser``); skipped without them unless
``REQUIRE_TEST_BROWSER=1`` (CI), where a missing browser fails.
"""

from __future__ import annotations

import os
import shutil
import threading
import typing as t
from collections.abc import Iterator
from pathlib import Path

import pytest
from flask import Flask, jsonify, request

pytestmark = pytest.mark.browser

REQUIRE = os.environ.get("REQUIRE_TEST_BROWSER") == "1"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
)
FETCH = """
const [url, init, done] = arguments;
fetch(url, init)
  .then(r => r.text().then(body => done({read: true, status: r.status, body: body})))
  .catch(e => done({read: false, error: String(e)}));
"""


def _missing() -> str | None:
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed (dependency group 'tests')"
    for name, package in (("chromium", "chromium"), ("chromedriver", "chromium-driver")):
        if shutil.which(name) is None:
            return f"{name} not found: install Debian's {package} (bash .ci/install-browser)"
    return None


class Server:
    """A WSGI app behind a threaded werkzeug server on 127.0.0.1 and a free port."""

    def __init__(self, app: Flask) -> None:
        from werkzeug.serving import make_server

        self.app = app
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.origin = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.thread.join(5)
        self.server.server_close()


def page_app() -> Flask:
    app = Flask("page")

    @app.get("/")
    def page() -> str:
        return "<!doctype html><title>front end</title><p>front end</p>"

    return app


def api_app(root: Path, **cors: t.Any) -> Flask:
    """The example app with ``cors`` settings, its own SQLite file, and a cookie probe."""
    from example_app import create_app
    from flask_complete import db

    app = create_app(
        {
            "SECRET_KEY": "browser-7YqLq2Gv0bKcR9xW3nTf8ZpJ1sHdE5uA6mXoC4iV",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'notes.sqlite3'}",
            **cors,
        }
    )
    with app.app_context():
        db.create_all()
    # Writes need a login: the page's script sends a bearer token (no cookie, so CORS alone
    # decides whether it may read the answer).
    runner = app.test_cli_runner()
    created = runner.invoke(args=["users", "create", "cors@example.test", "--password", "x" * 16])
    assert created.exit_code == 0, created.output
    minted = runner.invoke(args=["users", "token", "cors@example.test", "--name", "browser"])
    assert minted.exit_code == 0, minted.output
    app.config["BROWSER_TEST_TOKEN"] = minted.stdout.strip().splitlines()[0]

    @app.post("/api/probe")
    def set_probe() -> t.Any:
        response = jsonify(set=True)
        response.set_cookie("probe", "1", httponly=True, samesite="Lax")
        return response

    @app.get("/api/probe")
    def read_probe() -> t.Any:
        return jsonify(cookie=request.cookies.get("probe"))

    return app


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[t.Any]:
    missing = _missing()
    if missing is not None:
        if REQUIRE:
            pytest.fail(f"{missing} (REQUIRE_TEST_BROWSER=1: the browser is required)")
        pytest.skip(missing)
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = t.cast(str, shutil.which("chromium"))
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}")
    service = Service(executable_path=t.cast(str, shutil.which("chromedriver")))
    driver = webdriver.Chrome(options=options, service=service)
    driver.set_script_timeout(15)
    driver.set_page_load_timeout(15)
    try:
        yield driver
    finally:
        driver.quit()


@pytest.fixture(scope="module")
def servers(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Server]]:
    """Two front-end origins, an API allowing only the first (with credentials), and an API
    allowing every origin without credentials."""
    allowed, other = Server(page_app()), Server(page_app())
    exact = Server(
        api_app(
            tmp_path_factory.mktemp("exact"),
            CORS_ORIGINS=[allowed.origin],
            CORS_SUPPORTS_CREDENTIALS=True,
            CORS_MAX_AGE=600,
        )
    )
    anyone = Server(api_app(tmp_path_factory.mktemp("anyone"), CORS_ORIGINS=["*"]))
    running = {"allowed": allowed, "other": other, "exact": exact, "anyone": anyone}
    try:
        yield running
    finally:
        for server in running.values():
            server.stop()


def fetch(driver: t.Any, page: Server, url: str, **init: t.Any) -> dict[str, t.Any]:
    """Open ``page`` and return what its script could read from ``fetch(url, init)``."""
    if not driver.current_url.startswith(page.origin):
        driver.get(page.origin + "/")
    return t.cast(dict[str, t.Any], driver.execute_async_script(FETCH, url, init))


def create_notebook(name: str, api: Server) -> dict[str, t.Any]:
    # A JSON body and an Authorization header make this a preflighted request.
    token = api.app.config["BROWSER_TEST_TOKEN"]
    return {
        "method": "POST",
        "headers": {"Content-Type": "application/json", "Authorization": f"Bearer {token}"},
        "body": f'{{"name": "{name}"}}',
    }


def list_notebooks(api: Server) -> dict[str, t.Any]:
    # Notebooks are their owner's: listing them takes the token too.
    token = api.app.config["BROWSER_TEST_TOKEN"]
    return {"headers": {"Authorization": f"Bearer {token}"}}


def test_allowed_origin_reads_the_api(browser: t.Any, servers: dict[str, Server]) -> None:
    api = servers["exact"].origin
    notebook = create_notebook("a", servers["exact"])
    created = fetch(browser, servers["allowed"], f"{api}/api/notebooks", **notebook)
    assert created["read"] and created["status"] == 201, created
    listing = list_notebooks(servers["exact"])
    listed = fetch(browser, servers["allowed"], f"{api}/api/notebooks", **listing)
    assert listed["read"] and '"name":"a"' in listed["body"].replace(" ", ""), listed


def test_disallowed_origin_is_blocked(browser: t.Any, servers: dict[str, Server]) -> None:
    api = servers["exact"].origin
    read = fetch(browser, servers["other"], f"{api}/api/notebooks")
    assert read == {"read": False, "error": "TypeError: Failed to fetch"}
    evil = create_notebook("evil", servers["exact"])
    write = fetch(browser, servers["other"], f"{api}/api/notebooks", **evil)
    assert write["read"] is False
    # The preflight failed, so the POST was never sent.
    listing = list_notebooks(servers["exact"])
    listed = fetch(browser, servers["allowed"], f"{api}/api/notebooks", **listing)
    assert listed["status"] == 200 and "evil" not in listed["body"]


def test_credentials_work_with_the_exact_origin(browser: t.Any, servers: dict[str, Server]) -> None:
    probe = servers["exact"].origin + "/api/probe"
    page = servers["allowed"]
    assert fetch(browser, page, probe, method="POST", credentials="include")["status"] == 200
    with_cookie = fetch(browser, page, probe, credentials="include")
    assert with_cookie["read"] and '"cookie":"1"' in with_cookie["body"].replace(" ", "")
    without = fetch(browser, page, probe)
    assert without["read"] and '"cookie":null' in without["body"].replace(" ", "")
    blocked = fetch(browser, servers["other"], probe, credentials="include")
    assert blocked["read"] is False


def test_wildcard_origins_never_carry_credentials(
    browser: t.Any, servers: dict[str, Server]
) -> None:
    url = servers["anyone"].origin + "/api/notebooks"
    listing = list_notebooks(servers["anyone"])
    plain = fetch(browser, servers["other"], url, **listing)
    assert plain["read"] and plain["status"] == 200, plain
    credentialed = fetch(browser, servers["other"], url, credentials="include", **listing)
    assert credentialed == {"read": False, "error": "TypeError: Failed to fetch"}


# --- the bundle's login pages, driven as a person would ---------------------------------------


def login_app(root: Path) -> Flask:
    """The example app on its own SQLite file, with one user."""
    from example_app import create_app
    from flask_complete import db

    app = create_app(
        {
            "SECRET_KEY": "browser-Qm4Rk8sTz1VbN6yHw3JcX9pLd2FgA7uE5oKiW0nB",
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{root / 'login.sqlite3'}",
        }
    )
    with app.app_context():
        db.create_all()
    runner = app.test_cli_runner()
    created = runner.invoke(args=["users", "create", EMAIL, "--password", PASSWORD])
    assert created.exit_code == 0, created.output
    return app


EMAIL, PASSWORD = "ann@example.test", "correct horse battery"


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = Server(login_app(tmp_path_factory.mktemp("login")))
    try:
        yield server
    finally:
        server.stop()


def send(driver: t.Any) -> None:
    """Click the page's form button and wait for the page it leads to."""
    from selenium.common.exceptions import StaleElementReferenceException, WebDriverException
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.wait import WebDriverWait

    button = driver.find_element(By.CSS_SELECTOR, "form button[type=submit]")
    button.click()

    def left(_: t.Any) -> bool:
        # The old page's button is gone. Chromium may say so as an "unknown error" (the node
        # "does not belong to the document") rather than as a stale element.
        try:
            button.is_enabled()
        except StaleElementReferenceException:
            return True
        except WebDriverException as e:
            if "does not belong to the document" in str(e):
                return True
            raise
        return False

    WebDriverWait(driver, 15).until(left)


def log_in(driver: t.Any, site: Server, next_path: str = "") -> None:
    """Fill in and send the login form, as a person would."""
    from selenium.webdriver.common.by import By

    query = f"?next={next_path}" if next_path else ""
    driver.get(f"{site.origin}/auth/login{query}")
    driver.find_element(By.NAME, "email").send_keys(EMAIL)
    driver.find_element(By.NAME, "password").send_keys(PASSWORD)
    send(driver)


def status_with_cookie(site: Server, path: str, name: str, value: str) -> int:
    """The status of ``GET path`` sent with only the cookie ``name`` (a stolen copy)."""
    import urllib.error
    import urllib.request

    request = urllib.request.Request(f"{site.origin}{path}", headers={"Cookie": f"{name}={value}"})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return int(response.status)
    except urllib.error.HTTPError as e:
        return e.code


def test_log_in_see_the_page_log_out(browser: t.Any, site: Server) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    log_in(browser, site, "/auth/password")
    # Sent on to the page it asked for, which needs the login.
    assert browser.current_url == f"{site.origin}/auth/password"
    assert browser.find_element(By.TAG_NAME, "h1").text == "Change password"
    cookie = browser.get_cookie("session")
    assert cookie is not None and cookie["httpOnly"]
    assert status_with_cookie(site, "/auth/me", "session", cookie["value"]) == 200

    browser.get(f"{site.origin}/auth/logout")
    send(browser)
    assert browser.current_url == f"{site.origin}/"
    # The captured cookie ended with the logout, on the server.
    assert status_with_cookie(site, "/auth/me", "session", cookie["value"]) == 401
    browser.get(f"{site.origin}/auth/password")
    assert browser.current_url.startswith(f"{site.origin}/auth/login?next=")


def test_a_wrong_password_shows_the_form_again(browser: t.Any, site: Server) -> None:
    from selenium.webdriver.common.by import By

    browser.delete_all_cookies()
    browser.get(f"{site.origin}/auth/login")
    browser.find_element(By.NAME, "email").send_keys("nobody@example.test")
    browser.find_element(By.NAME, "password").send_keys(PASSWORD)
    send(browser)
    assert browser.find_element(By.CSS_SELECTOR, "[role=alert]").text == (
        "Invalid email or password."
    )
    assert browser.get_cookie("remember_token") is None


# --- the example app, end to end ---------------------------------------------------------------

#: Set to a folder (docs/_static) to keep the screenshots of the walk there.
SCREENSHOTS = os.environ.get("BROWSER_SCREENSHOTS")


def fill(driver: t.Any, **fields: str) -> None:
    from selenium.webdriver.common.by import By

    for name, value in fields.items():
        element = driver.find_element(By.NAME, name)
        element.clear()
        element.send_keys(value)


def screenshot(driver: t.Any, folder: Path, name: str) -> None:
    """A PNG of the window, kept in ``BROWSER_SCREENSHOTS`` when set."""
    target = Path(SCREENSHOTS) if SCREENSHOTS else folder
    target.mkdir(parents=True, exist_ok=True)
    png = driver.get_screenshot_as_png()
    assert png.startswith(b"\x89PNG")
    (target / name).write_bytes(png)


def test_a_person_keeps_notes(
    browser: t.Any, site: Server, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Log in, make a notebook, add notes, edit one, delete one, and see them on the index."""
    from selenium.webdriver.common.by import By

    shots = tmp_path_factory.mktemp("screenshots")
    browser.set_window_size(1000, 760)
    browser.delete_all_cookies()
    browser.get(f"{site.origin}/")
    browser.find_element(By.LINK_TEXT, "Log in").click()
    screenshot(browser, shots, "login.png")
    fill(browser, email=EMAIL, password=PASSWORD)
    send(browser)
    assert browser.find_element(By.TAG_NAME, "h1").text == "Your notebooks"

    for name in ("Groceries", "Trip to Lisbon"):
        browser.get(f"{site.origin}/")
        fill(browser, name=name)
        send(browser)
        assert browser.find_element(By.TAG_NAME, "h1").text == name
        notes = {
            "Groceries": ("Leeks, potatoes, cream", "Coffee beans", "Oranges"),
            "Trip to Lisbon": ("Book the tram tour", "Pastéis de nata in Belém"),
        }[name]
        for title in notes:
            fill(browser, title=title, body=f"{title}: remember it.")
            send(browser)
    # Edit one note and delete another, through their pages.
    browser.find_element(By.LINK_TEXT, "Book the tram tour").click()
    fill(browser, title="Ride tram 28")
    send(browser)
    browser.find_element(By.LINK_TEXT, "Ride tram 28")
    browser.get(f"{site.origin}/")
    browser.find_element(By.LINK_TEXT, "Oranges").click()
    send_danger = browser.find_element(By.CSS_SELECTOR, "form.danger button")
    send_danger.click()
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.wait import WebDriverWait

    WebDriverWait(browser, 15).until(expected_conditions.staleness_of(send_danger))

    browser.get(f"{site.origin}/")
    titles = [a.text for a in browser.find_elements(By.CSS_SELECTOR, ".notebook li a")]
    assert titles == [
        "Leeks, potatoes, cream",
        "Coffee beans",
        "Ride tram 28",
        "Pastéis de nata in Belém",
    ]
    screenshot(browser, shots, "index.png")
    # Another person sees none of it.
    runner = site.app.test_cli_runner()
    created = runner.invoke(args=["users", "create", "bob@example.test", "-p", PASSWORD])
    assert created.exit_code == 0, created.output
    bob = site.app.test_client()
    assert bob.post("/auth/login", json={"email": "bob@example.test", "password": PASSWORD})
    assert bob.get("/api/notebooks").json == []
