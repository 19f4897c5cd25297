"""Store isolation shared by `audience dashboards` and Superset's own process.

Superset runs in its own virtualenv without the ``audience`` package, so this module needs
only the standard library (Flask and Superset are imported inside the hooks, in Superset's
process). Both sides derive the same names and passwords from one secret, the role key
(``DASHBOARDS_ROLE_KEY``): nothing about a store or a user is stored in clear anywhere a
dashboard user can read.

- ``reader``: the PostgreSQL login of Superset's ``audience`` database, e.g.
  ``audience_dashboards``. It reads every store: only Superset admins query as it.
- ``user_role(reader, username)``: each non-admin Superset user queries as their own login
  role, ``<reader>_<16 hex>``; the database lets that role see only the stores granted to it.
- ``store_role(store)``: the Superset role carrying a store's row-level-security filter, named
  ``audience-store-<12 hex>`` so that no name in Superset shows which stores exist.
"""

from __future__ import annotations

import hashlib
import hmac
import os
from typing import Any

KEY_ENV = "DASHBOARDS_ROLE_KEY"
STORE_ROLE_PREFIX = "audience-store-"
ADMIN_ROLE = "Admin"
READER_SUFFIX = "_dashboards"


class IsolationError(RuntimeError):
    """The connection cannot be given a store-limited identity: no data, and why."""


def _mac(key: str, purpose: str) -> str:
    return hmac.new(key.encode(), purpose.encode(), hashlib.sha256).hexdigest()


def user_role(reader: str, username: str, key: str) -> str:
    """The PostgreSQL login role a non-admin Superset user's queries run as."""
    return f"{reader}_{_mac(key, 'user:' + username)[:16]}"


def role_password(role: str, key: str) -> str:
    """The password of a dashboards login role (the reader or a user's role)."""
    return _mac(key, "password:" + role)


def store_role(store: str, key: str) -> str:
    """The Superset role of a store (row-level security and dataset access)."""
    return f"{STORE_ROLE_PREFIX}{_mac(key, 'store:' + store)[:12]}"


def is_reader(username: str | None) -> bool:
    return bool(username) and str(username).endswith(READER_SUFFIX)


def _is_admin(user: Any) -> bool:
    return user is not None and any(r.name == ADMIN_ROLE for r in getattr(user, "roles", []))


def connection_mutator(uri: Any, params: dict[str, Any], username: str | None,
                       security_manager: Any, source: Any) -> tuple[Any, dict[str, Any]]:
    """Superset's ``DB_CONNECTION_MUTATOR``: a non-admin user connects as their own role.

    Only connections made as a dashboards reader are changed (another database an admin
    adds is left alone). No logged-in user, no key or no such role: the connection fails,
    so nothing falls back to the all-stores reader.
    """
    if not is_reader(uri.username):
        return uri, params
    user = security_manager.find_user(username=username) if username else None
    if _is_admin(user):
        return uri, params
    if user is None:
        raise IsolationError("the audience database is read only on behalf of a logged-in "
                             "dashboard user")
    key = os.environ.get(KEY_ENV)
    if not key:
        raise IsolationError(f"{KEY_ENV} is not set in Superset's environment: store "
                             "managers cannot query until it is")
    role = user_role(uri.username, user.username, key)
    return uri.set(username=role, password=role_password(role, key)), params


def _close_related_lists(app: Any) -> None:
    """Only admins may call the ``related`` list endpoints (owners, roles, created_by...):
    they list every user and role of the Superset, filters or not (``include_ids``)."""
    from flask import abort, g, request

    @app.before_request
    def _admins_only() -> None:
        path = request.path
        if not (path.startswith("/api/v1/") and "/related/" in path):
            return
        user = getattr(g, "user", None)
        if not _is_admin(user) and request.headers.get("Authorization", "").startswith(
                "Bearer "):  # an API token: the user is known once the token is checked
            from flask_jwt_extended import (  # type: ignore[import-not-found]
                current_user,
                verify_jwt_in_request,
            )
            try:
                verify_jwt_in_request(optional=True)
                user = current_user
            except Exception:  # noqa: BLE001 - a bad token is simply not an admin
                user = None
        if not _is_admin(user):
            abort(403)


def app_mutator(app: Any) -> None:
    """Superset's ``FLASK_APP_MUTATOR``."""
    _close_related_lists(app)
