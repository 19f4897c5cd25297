"""Superset settings for the store deployment; every secret comes from the environment."""

import os
import sys
from urllib.parse import urlsplit

# Known placeholders (audience.core.placeholders holds the same list): Superset refuses to
# start with one rather than sign session cookies with a public key.
_PLACEHOLDERS = {
    "", "change-me", "changeme", "change_me", "password", "secret", "admin", "superset",
    "CHANGE_ME_TO_A_COMPLEX_RANDOM_SECRET", "YOUR_OWN_RANDOM_GENERATED_SECRET_KEY",
    "thisISaSECRET_1234", "\\2\\1thisismyscretkey\\1\\2\\e\\y\\y\\h",
}


def _refuse(variable: str, value: str | None, how: str = "openssl rand -base64 42") -> None:
    if value is None or value.strip() in _PLACEHOLDERS or value.strip().lower() in _PLACEHOLDERS:
        sys.exit(f"error: refusing to start: {variable} is empty or a placeholder (e.g. "
                 f"change-me from .env.example): set it to a random value (`{how}`)")


_refuse("SUPERSET_SECRET_KEY", os.environ.get("SUPERSET_SECRET_KEY"))
if "SUPERSET_ADMIN_PASSWORD" in os.environ:  # superset-init creates the admin with it
    _refuse("SUPERSET_ADMIN_PASSWORD", os.environ["SUPERSET_ADMIN_PASSWORD"],
            "openssl rand -hex 16")
_db_password = urlsplit(os.environ.get("SUPERSET_DATABASE_URL", "")).password
if _db_password is not None:
    _refuse("POSTGRES_PASSWORD (in SUPERSET_DATABASE_URL)", _db_password, "openssl rand -hex 24")

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
