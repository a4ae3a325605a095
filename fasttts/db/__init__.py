"""Persistence: typed models, engine/session factory, and schema-version checks."""

from fasttts.db.migrate import SchemaError, check_schema, current_revision, head_revision, prepare_schema, upgrade_to_head
from fasttts.db.models import FINAL_STATUSES, JOB_KINDS, JOB_STATUSES, Base, Job, JobStatus, Segment, Voice, utcnow
from fasttts.db.session import close_sessions, create_db_engine, engine_from_settings, normalize_url, session_factory

__all__ = [
    "FINAL_STATUSES",
    "JOB_KINDS",
    "JOB_STATUSES",
    "Base",
    "Job",
    "JobStatus",
    "SchemaError",
    "Segment",
    "Voice",
    "check_schema",
    "close_sessions",
    "create_db_engine",
    "current_revision",
    "engine_from_settings",
    "head_revision",
    "normalize_url",
    "prepare_schema",
    "session_factory",
    "upgrade_to_head",
    "utcnow",
]
