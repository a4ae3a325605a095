"""Schema version checks: the server runs migrations at start-up or refuses an old schema clearly.

Alembic is the only way the schema changes; ``upgrade_to_head`` runs it programmatically with the
repository's ``migrations/`` folder, ``check_schema`` compares the database's revision to head.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from fasttts.errors import FastTTSError

MIGRATIONS_DIR = Path(__file__).resolve().parents[2] / "migrations"


class SchemaError(FastTTSError):
    """The database schema is not at the revision this code expects."""


def alembic_config(url: str) -> Config:
    from fasttts.db.session import normalize_url

    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("sqlalchemy.url", normalize_url(url).replace("%", "%%"))
    return cfg


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    assert head is not None, "migrations/ has no revisions"
    return head


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


def upgrade_to_head(url: str) -> None:
    """Run ``alembic upgrade head`` against ``url``."""
    command.upgrade(alembic_config(url), "head")


def check_schema(engine: Engine) -> None:
    """Raise :class:`SchemaError` with the fix spelled out unless the database is at head."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        state = "has no FastTTS schema" if current is None else f"is at schema revision {current}"
        raise SchemaError(
            f"the database {engine.url.render_as_string(hide_password=True)} {state}, but this FastTTS needs {head}; "
            "run `alembic upgrade head` (or start the server with migrations enabled)"
        )


def prepare_schema(url: str, *, migrate: bool) -> None:
    """Start-up: run migrations (``migrate``) or refuse an outdated schema with a clear message."""
    from fasttts.db.session import create_db_engine

    if migrate:
        upgrade_to_head(url)
    engine = create_db_engine(url)
    try:
        check_schema(engine)
    finally:
        engine.dispose()
