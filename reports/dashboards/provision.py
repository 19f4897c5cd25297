"""Provision Superset: import the bundle, then one role per store with row-level security.

A store manager gets two roles: Superset's built-in ``Gamma`` (can open dashboards and charts,
no SQL Lab, no data by itself) and the store's role (``superset_hooks.store_role``: a name
that does not show the store), which grants read access to the report datasets and carries a
row-level-security filter ``store_id = '<store>'``. That filter keys Superset's caches and
filters the queries Superset writes; the isolation itself is the database's: a manager's
queries run as their own PostgreSQL role (``dbroles``), which sees only their stores.
Admins see every store.

Everything is idempotent: the bundle overwrites by uuid, roles and filters are looked up by
name and updated in place, a user's other roles are kept.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any

from audience.core.ids import RULE as ID_RULE
from audience.core.ids import is_valid_id
from audience.reports.dashboards.bundle import build, dataset_tables, load_assets
from audience.reports.dashboards.client import Superset, SupersetError
from audience.reports.dashboards.superset_hooks import store_role

log = logging.getLogger(__name__)

DATABASE_NAME = "audience"
BASE_ROLE = "Gamma"
LEGACY_PREFIX = "audience-store:"  # earlier role names, which carried the store id
MANAGER_LAST_NAME = "store manager"  # never the store: user lists must not name stores


@dataclass
class Provisioned:
    dashboard_url: str
    charts: int
    datasets: dict[str, int]  #: view name -> Superset dataset id
    store_roles: list[str] = field(default_factory=list)  #: the stores given a role


def rls_clause(store: str) -> str:
    """The filter of a store's role. The id rule (audience.core.ids, the same at every
    intake) keeps quotes, newlines and anything else a filter cannot carry safely out."""
    if not is_valid_id(store):
        raise SupersetError(f"store id {ascii(store)[:40]} has characters a filter cannot "
                            f"carry safely: use {ID_RULE}")
    return f"store_id = '{store}'"


def check_stores(stores: list[str]) -> None:
    """Every store id valid, before anything in Superset changes (no half-provisioning)."""
    for store in stores:
        rls_clause(store)


def _datasets(sup: Superset, tables: list[str]) -> dict[str, int]:
    """The bundle's datasets in Superset (view name -> id); error if not provisioned yet."""
    wanted = set(tables)
    found = {d["table_name"]: d["id"] for d in sup.find("dataset")
             if d["table_name"] in wanted
             and (d.get("database") or {}).get("database_name") == DATABASE_NAME}
    missing = sorted(wanted - set(found))
    if missing:
        raise SupersetError(f"Superset has no dataset {', '.join(missing)} yet: run "
                            "`audience dashboards provision` first")
    return found


def _access_permissions(sup: Superset, dataset_ids: dict[str, int]) -> list[int]:
    """ids of the `datasource_access` permissions on the given datasets."""
    names = {f"[{DATABASE_NAME}].[{t}](id:{i})" for t, i in dataset_ids.items()}
    perms = [p["id"] for p in sup.find("security/permissions-resources")
             if p["permission"]["name"] == "datasource_access"
             and p["view_menu"]["name"] in names]
    if len(perms) != len(names):
        raise SupersetError(f"found {len(perms)} of {len(names)} dataset permissions in Superset:"
                            " run `superset init` there, then provision again")
    return perms


def _one(items: list[dict[str, Any]], key: str, value: object) -> dict[str, Any] | None:
    hits = [i for i in items if i.get(key) == value]
    return hits[0] if hits else None


def ensure_store_role(sup: Superset, store: str, dataset_ids: dict[str, int],
                      permission_ids: list[int], key: str) -> int:
    """Create or update the store's role and its row-level-security filter; return the role id.

    ``permission_ids``: ``_access_permissions`` of the datasets, the same for every store.
    ``key``: the role key (the role's name is derived from it and the store).
    """
    clause = rls_clause(store)
    name = store_role(store, key)
    roles = sup.find("security/roles")
    role = _one(roles, "name", name)
    legacy = _one(roles, "name", f"{LEGACY_PREFIX}{store}")
    if role is None and legacy is not None:  # a name that showed the store: rename it
        sup.call("PUT", f"/api/v1/security/roles/{legacy['id']}", json={"name": name},
                 doing=f"renaming the role of store {store}")
        role = legacy
    role_id = role["id"] if role else sup.call(
        "POST", "/api/v1/security/roles/", json={"name": name}, doing=f"creating role {name}")["id"]
    sup.call("POST", f"/api/v1/security/roles/{role_id}/permissions",
             json={"permission_view_menu_ids": permission_ids},
             doing=f"granting role {name} the report datasets")
    rule = {"name": f"audience store {store}", "filter_type": "Regular",
            "tables": sorted(dataset_ids.values()), "roles": [role_id], "group_key": "store",
            "clause": clause,
            "description": f"Store managers of {store} see only their store's rows."}
    existing = _one(sup.find("rowlevelsecurity"), "name", rule["name"])
    if existing:
        sup.call("PUT", f"/api/v1/rowlevelsecurity/{existing['id']}", json=rule,
                 doing=f"updating the row-level security of {store}")
    else:
        sup.call("POST", "/api/v1/rowlevelsecurity/", json=rule,
                 doing=f"adding row-level security for {store}")
    return role_id


def provision(sup: Superset, db_url: str, stores: list[str],
              key: str | None = None) -> Provisioned:
    """Import the bundle (pointing at ``db_url``) and create a role for each store (none
    without a role key: a database without store isolation is for admins only)."""
    check_stores(stores)
    assets = load_assets()
    bundle = build(db_url, assets)
    sup.import_bundle(bundle.zip_bytes, bundle.passwords)
    datasets = _datasets(sup, dataset_tables(assets))
    permissions = _access_permissions(sup, datasets)
    for store in stores:
        if key is None:
            break
        ensure_store_role(sup, store, datasets, permissions, key)
        log.info("store role %s: row-level security store_id = %r", store_role(store, key),
                 store)
    charts = sum(1 for rel in assets if rel.startswith("charts/"))
    dash = next(d for rel, d in assets.items() if rel.startswith("dashboards/"))
    return Provisioned(f"{sup.url}/superset/dashboard/{dash['slug']}/", charts, datasets,
                       list(stores) if key else [])


def check_user(sup: Superset, user: str, password: str | None) -> None:
    """Error unless ``user`` exists or will be created (before anything changes)."""
    if not password and _one(sup.find("security/users"), "username", user) is None:
        raise SupersetError(f"Superset has no user {user!r}: pass --password to create one")


def grant(sup: Superset, user: str, store: str, key: str, password: str | None = None,
          email: str | None = None) -> str:
    """Give ``user`` the store's role (creating the user when a password is given).

    The database side (the user's own PostgreSQL role) is ``dbroles.grant_stores``.
    Returns "created" or "updated".
    """
    datasets = _datasets(sup, dataset_tables())
    role_id = ensure_store_role(sup, store, datasets, _access_permissions(sup, datasets), key)
    roles = {r["name"]: r["id"] for r in sup.find("security/roles")}
    if BASE_ROLE not in roles:
        raise SupersetError(f"Superset has no {BASE_ROLE} role: run `superset init` there")
    found = _one(sup.find("security/users"), "username", user)
    if found is None:
        if not password:
            raise SupersetError(f"Superset has no user {user!r}: pass --password to create one")
        sup.call("POST", "/api/v1/security/users/", doing=f"creating user {user}", json={
            "username": user, "password": password, "first_name": user,
            "last_name": MANAGER_LAST_NAME,
            "email": email or f"{user}@users.invalid", "active": True,
            "roles": [roles[BASE_ROLE], role_id]})
        return "created"
    current = {r["id"] for r in found.get("roles", [])}
    body: dict[str, Any] = {"roles": sorted(current | {roles[BASE_ROLE], role_id})}
    if password:
        body["password"] = password
    if found.get("last_name") == store:  # set so by earlier versions: it showed the store
        body["last_name"] = MANAGER_LAST_NAME
    sup.call("PUT", f"/api/v1/security/users/{found['id']}", json=body,
             doing=f"giving {user} the role of store {store}")
    return "updated"
