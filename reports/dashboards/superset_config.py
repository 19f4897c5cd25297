"""Superset settings for `audience dashboards serve` (one machine, loopback only).

Read by Superset through SUPERSET_CONFIG_PATH; every value that differs per install comes
from the environment `audience dashboards serve` sets. No Redis, Celery or telemetry.
"""

import os

SECRET_KEY = os.environ["SUPERSET_SECRET_KEY"]
SQLALCHEMY_DATABASE_URI = os.environ["SUPERSET_DATABASE_URL"]
CACHE_CONFIG = {"CACHE_TYPE": "SimpleCache"}
DATA_CACHE_CONFIG = {"CACHE_TYPE": "NullCache"}  # charts always show what the views hold now
RATELIMIT_STORAGE_URI = "memory://"
SCARF_ANALYTICS = False  # a closed store network: no telemetry pixel
TALISMAN_ENABLED = False  # plain HTTP on loopback; TLS is terminated in front in production
FAB_ADD_SECURITY_API = True  # roles, users and permissions over REST: `dashboards provision/grant`
WTF_CSRF_ENABLED = True
FEATURE_FLAGS = {"DASHBOARD_NATIVE_FILTERS": True}
# The embedded pipeline writes SQLite; a local Superset may chart it. Only admins can add
# databases, and this Superset listens on loopback only.
PREVENT_UNSAFE_DB_CONNECTIONS = False

# Store isolation (superset_hooks.py, next to this file): a store manager's queries run as
# their own PostgreSQL role, which sees only their stores; user and role lists are admin-only.
import sys  # noqa: E402
from pathlib import Path  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from superset_hooks import (  # type: ignore[import-not-found]  # noqa: E402
    app_mutator,
    connection_mutator,
)

DB_CONNECTION_MUTATOR = connection_mutator
FLASK_APP_MUTATOR = app_mutator
