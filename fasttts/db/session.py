"""Engine and session factory built from :class:`~fasttts.config.Settings`.

SQLite (the embedded default) gets WAL (readers never block the one writer), foreign keys on (so
deleting a job cascades to its segments) and a busy timeout (API and runner share the file).
PostgreSQL URLs are pinned to the psycopg 3 driver.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session, sessionmaker

from fasttts.config import Settings


def normalize_url(url: str) -> str:
    """``postgres://``/``postgresql://`` → ``postgresql+psycopg://`` (psycopg 3 is what we ship)."""
    parsed = make_url(url.replace("postgres://", "postgresql://", 1) if url.startswith("postgres://") else url)
    if parsed.drivername == "postgresql":
        parsed = parsed.set(drivername="postgresql+psycopg")
    return parsed.render_as_string(hide_password=False)


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=10000")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.close()


def create_db_engine(url: str) -> Engine:
    """A SQLAlchemy engine for ``url`` with the dialect-specific settings above."""
    url = normalize_url(url)
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 10})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    # pool_pre_ping: a database restart must not surface as errors on reused dead connections.
    return create_engine(url, pool_pre_ping=True, pool_size=5, max_overflow=10, connect_args={"connect_timeout": 5})


def engine_from_settings(settings: Settings) -> Engine:
    return create_db_engine(settings.resolved_database_url)


def session_factory(engine: Engine) -> sessionmaker[Session]:
    """Sessions that keep loaded attributes after commit (we hand ORM rows to response builders)."""
    return sessionmaker(engine, expire_on_commit=False)


def close_sessions(sessions: sessionmaker[Session]) -> None:
    """Close the pooled connections of the engine ``sessions`` are bound to: a service that stops
    closes its database connections itself, rather than leave open sockets to the garbage collector
    (and, on PostgreSQL, server backends to the idle timeout)."""
    bind = sessions.kw.get("bind")
    if isinstance(bind, Engine):
        bind.dispose()
