"""The five implementers of ``examples/implement-plan.json``, played on the fake Messages API: each task,
known by the opening of its text, writes its part of the bookshelf feature with the ``anthropic``
backend's write tools, then answers with what it did."""

from __future__ import annotations

from typing import Any

AUTH = '''"""Passwords and tokens: salted PBKDF2-SHA256 hashes, and HMAC-signed tokens."""

from __future__ import annotations

import hashlib
import hmac
import secrets

_ROUNDS = 100_000


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, _ROUNDS)
    return f"{salt.hex()}${digest.hex()}"


def verify_password(password: str, hashed: str) -> bool:
    salt, _, expected = hashed.partition("$")
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), _ROUNDS)
    return hmac.compare_digest(digest.hex(), expected)


def issue_token(user: str, secret: str) -> str:
    return f"{user}.{_sign(user, secret)}"


def user_of(token: str, secret: str) -> str | None:
    user, _, signature = token.rpartition(".")
    if not user or not hmac.compare_digest(signature, _sign(user, secret)):
        return None
    return user


def _sign(user: str, secret: str) -> str:
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()
'''

API = '''"""The API: one handle() that routes a request to the catalogue."""

from __future__ import annotations

from dataclasses import asdict

from .auth import user_of
from .books import Book, Catalogue

_FIELDS = ("isbn", "title", "author")


def handle(
    catalogue: Catalogue, method: str, path: str, body: dict | None, token: str | None, secret: str
) -> tuple[int, object]:
    if method == "GET" and path == "/books":
        return 200, [asdict(book) for book in catalogue.all()]
    if method == "GET" and path.startswith("/books/"):
        book = catalogue.find(path.removeprefix("/books/"))
        return (200, asdict(book)) if book is not None else (404, {"error": "not found"})
    if method == "POST" and path == "/books":
        return _add(catalogue, body or {}, token, secret)
    return 404, {"error": "not found"}


def _add(catalogue: Catalogue, body: dict, token: str | None, secret: str) -> tuple[int, object]:
    if token is None or user_of(token, secret) is None:
        return 401, {"error": "sign in first"}
    missing = [name for name in _FIELDS if not body.get(name)]
    if missing:
        return 400, {"error": f"missing: {', '.join(missing)}"}
    book = Book(*(str(body[name]) for name in _FIELDS))
    try:
        catalogue.add(book)
    except ValueError as exc:
        return 400, {"error": str(exc)}
    return 201, asdict(book)
'''

SCHEMA = '''"""The SQLite schema: members, and the books they add."""

from __future__ import annotations

import sqlite3

SCHEMA = """
CREATE TABLE IF NOT EXISTS users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS books (
    isbn TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    author TEXT NOT NULL,
    added_by TEXT REFERENCES users(name)
);
"""


def create_schema(connection: sqlite3.Connection) -> None:
    connection.executescript(SCHEMA)
'''

TEST_AUTH = """import unittest

from bookshelf.auth import hash_password, issue_token, user_of, verify_password


class AuthTest(unittest.TestCase):
    def test_a_password_verifies_against_its_hash_only(self) -> None:
        hashed = hash_password("s3cret")
        assert verify_password("s3cret", hashed)
        assert not verify_password("guess", hashed)
        assert hash_password("s3cret") != hashed  # salted

    def test_a_token_names_its_user_until_tampered_with(self) -> None:
        token = issue_token("ann", "key")
        assert user_of(token, "key") == "ann"
        assert user_of(token, "other key") is None
        assert user_of("bob" + token[3:], "key") is None
"""

TEST_API = """import unittest

from bookshelf.api import handle
from bookshelf.auth import issue_token
from bookshelf.books import Catalogue

SECRET = "key"
BOOK = {"isbn": "1", "title": "Alice", "author": "Carroll"}


class ApiTest(unittest.TestCase):
    def test_a_signed_in_member_adds_a_book_that_everyone_then_sees(self) -> None:
        catalogue = Catalogue()
        token = issue_token("ann", SECRET)
        assert handle(catalogue, "POST", "/books", BOOK, token, SECRET) == (201, BOOK)
        assert handle(catalogue, "GET", "/books", None, None, SECRET) == (200, [BOOK])
        assert handle(catalogue, "GET", "/books/1", None, None, SECRET) == (200, BOOK)

    def test_bad_requests_get_their_status(self) -> None:
        catalogue = Catalogue()
        token = issue_token("ann", SECRET)
        assert handle(catalogue, "POST", "/books", BOOK, None, SECRET)[0] == 401
        assert handle(catalogue, "POST", "/books", {"isbn": "2"}, token, SECRET)[0] == 400
        assert handle(catalogue, "GET", "/books/9", None, None, SECRET) == (404, {"error": "not found"})
        assert handle(catalogue, "DELETE", "/books", None, token, SECRET)[0] == 404
"""

TEST_SCHEMA = """import sqlite3
import unittest

from bookshelf.schema import create_schema


class SchemaTest(unittest.TestCase):
    def test_the_tables_are_made_and_making_them_again_is_harmless(self) -> None:
        connection = sqlite3.connect(":memory:")
        create_schema(connection)
        create_schema(connection)
        tables = {row[0] for row in connection.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        assert tables == {"users", "books"}
        connection.execute("INSERT INTO users VALUES ('ann', 'x')")
        connection.execute("INSERT INTO books VALUES ('1', 'Alice', 'Carroll', 'ann')")
"""

DOCS = """# The bookshelf API

`bookshelf.api.handle(catalogue, method, path, body, token, secret)` answers `(status, body)`.

| route | answers |
|---|---|
| `GET /books` | 200 and every book (`isbn`, `title`, `author`), by title |
| `GET /books/<isbn>` | 200 and the book, or 404 `{"error": "not found"}` |
| `POST /books` | 201 and the book added from the body; 401 without a valid token, 400 for a missing field or a duplicate ISBN |

A token comes from `bookshelf.auth.issue_token(user, secret)` once the member's password checks out
with `verify_password`.
"""

OLD_README_LINE = "Run its tests with `python -m unittest` (standard library only).\n"


def write(path: str, content: str) -> dict[str, Any]:
    return {"name": "write_file", "input": {"path": path, "content": content}}


#: each task by the opening of its text: the tool calls of its one round
IMPLEMENTERS: dict[str, list[dict[str, Any]]] = {
    "Implement the auth module": [write("bookshelf/auth.py", AUTH)],
    "Create the API endpoints": [write("bookshelf/api.py", API)],
    "Add the database schema": [write("bookshelf/schema.py", SCHEMA)],
    "Write unit tests": [
        write("tests/test_auth.py", TEST_AUTH),
        write("tests/test_api.py", TEST_API),
        write("tests/test_schema.py", TEST_SCHEMA),
    ],
    "Update the documentation": [
        write("docs/api.md", DOCS),
        {
            "name": "edit_file",
            "input": {
                "path": "README.md",
                "old_text": OLD_README_LINE,
                "new_text": OLD_README_LINE + "\nThe API is described in [docs/api.md](docs/api.md).\n",
            },
        },
    ],
}


def implementer(body: dict[str, Any]) -> str | list[dict[str, Any]] | None:
    """The fake model (``FakeApi.script``): an implementer's writes, then, once they are answered, its
    summary; None for any other request."""
    messages: list[dict[str, Any]] = body["messages"]
    opening = _text(messages[0]["content"])
    for start, calls in IMPLEMENTERS.items():
        if start in opening:
            if len(messages) > 1:
                paths = ", ".join(call["input"]["path"] for call in calls)
                return f"{start}: wrote {paths}, keeping to the interfaces of the shared context."
            return calls
    return None


def _text(content: str | list[dict[str, Any]]) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content)
