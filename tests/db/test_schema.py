"""Migrations run on PostgreSQL and SQLite, the schema check refuses old schemas, constraints hold."""

from __future__ import annotations

import datetime as dt

import pytest
from sqlalchemy import inspect, text
from sqlalchemy.exc import IntegrityError

from fasttts.db import Job, SchemaError, Segment, check_schema, create_db_engine, head_revision, session_factory, upgrade_to_head


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request: pytest.FixtureRequest, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'fasttts.db'}"
    from service_fixtures import create_pg_database, drop_pg_database

    url = create_pg_database()
    request.addfinalizer(lambda: drop_pg_database(url))
    return url


def test_upgrade_head_creates_schema_and_check_passes(db_url: str) -> None:
    engine = create_db_engine(db_url)
    with pytest.raises(SchemaError, match="has no FastTTS schema.*alembic upgrade head"):
        check_schema(engine)
    upgrade_to_head(db_url)
    check_schema(engine)
    tables = set(inspect(engine).get_table_names())
    assert {"jobs", "segments", "voices", "alembic_version"} <= tables
    engine.dispose()


def test_old_schema_is_refused_with_its_revision(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    with engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = 'old0'"))
    with pytest.raises(SchemaError, match=f"revision old0.*needs {head_revision()}"):
        check_schema(engine)
    engine.dispose()


def test_segments_unique_per_job_and_cascade_on_delete(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    Session = session_factory(engine)
    with Session() as s:
        job = Job(id="j1", kind="speak", request={"text": "hi"})
        job.segments = [Segment(index=0, text="a"), Segment(index=1, text="b")]
        s.add(job)
        s.commit()
        s.add(Segment(job_id="j1", index=1, text="dup"))
        with pytest.raises(IntegrityError):
            s.commit()
        s.rollback()
    with engine.begin() as conn:  # a raw DELETE: the database itself must cascade
        conn.execute(text("DELETE FROM jobs WHERE id = 'j1'"))
        assert conn.execute(text("SELECT count(*) FROM segments")).scalar() == 0
    engine.dispose()


def test_timestamps_come_back_as_aware_utc(db_url: str) -> None:
    upgrade_to_head(db_url)
    engine = create_db_engine(db_url)
    Session = session_factory(engine)
    when = dt.datetime(2030, 1, 2, 3, 4, 5, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    with Session() as s:
        s.add(Job(id="j2", kind="speak", request={}, expires_at=when))
        s.commit()
    with Session() as s:
        got = s.get(Job, "j2").expires_at
    assert got == when and got.tzinfo is not None and got.utcoffset() == dt.timedelta(0)
    engine.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path) -> None:
    engine = create_db_engine(f"sqlite:///{tmp_path / 'x.db'}")
    with engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar() == 1
    engine.dispose()
