"""Superset settings for the store deployment; every secret comes from the environment."""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URL"]
# No Redis or Celery for one store: in-process cache and rate limiter.
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache"}
RATELIMIT_STORAGE_URI = "memory://"
# A closed store network: no telemetry pixel, and TLS is terminated in front of Superset.
SCARF_ANALYTICS = False
TALISMAN_ENABLED = False
# Roles, users and permissions over REST: `audience dashboards provision` and `grant` use them.
FAB_ADD_SECURITY_API = True
# Store isolation: a store manager's queries run as their own PostgreSQL role, which sees
# only their stores (reports/dashboards/superset_hooks.py, copied next to this file by the
# Dockerfile); user and role lists are admin-only. Needs DASHBOARDS_ROLE_KEY.
from superset_hooks import app_mutator, connection_mutator  # noqa: E402

DB_CONNECTION_MUTATOR = connection_mutator
FLASK_APP_MUTATOR = app_mutator
