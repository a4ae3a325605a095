"""Persistence: typed models, engine/session factory, and schema-version checks."""

from fasttts.db.migrate import SchemaError, check_schema, current_revision, head_revision, prepare_schema, upgrade_to_head
from fasttts.db.models import FINAL_STATUSES, JOB_KINDS, JOB_STATUSES, Base, Job, Segment, Voice, utcnow
from fasttts.db.session import create_db_engine, engine_from_settings, normalize_url, session_factory

__all__ = [
    "Base", "Job", "Segment", "Voice", "JOB_KINDS", "JOB_STATUSES", "FINAL_STATUSES", "utcnow",
    "create_db_engine", "engine_from_settings", "session_factory", "normalize_url",
    "SchemaError", "check_schema", "current_revision", "head_revision", "prepare_schema", "upgrade_to_head",
]
