"""Celery job workers: a thin entry point into :mod:`fasttts.jobs`."""
