"""Fixtures for tests that migrate databases of their own."""

from __future__ import annotations

import uuid
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

from tests.conftest import database_url_for_tests


def url_for(database: str, *, owner: bool = False) -> str:
    """The test server's URL for `database`, as the application role or (owner) the owner role."""
    return urlunsplit(urlsplit(database_url_for_tests(owner=owner))._replace(path="/" + database))


@pytest.fixture
def scratch_database(db, django_db_blocker):
    """An empty database on the test server, dropped afterwards. (It asks for `db` so that pytest-django
    creates the test database even when no other selected test does: tests compare the two.)"""
    with django_db_blocker.unblock():
        name = f"{urlsplit(database_url_for_tests()).path.lstrip('/')}_scratch_{uuid.uuid4().hex[:8]}"
        admin = url_for("postgres", owner=True)  # the owner role may create databases
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        with django_db_blocker.unblock():
            yield url_for(name)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}"')


