"""What store isolation costs a dashboard query: the same chart queries as the owner on the
``public.report_*`` views and as a store manager's own role on the ``dashboards.report_*``
views (both with Superset's row-level-security filter), plus a new connection per query
(Superset opens one per query for analytics databases).

Uses a throwaway manager role (user ``bench-<hex>``), dropped at the end; reads only.
"""

from __future__ import annotations

import statistics
import time
import uuid
from collections.abc import Callable
from functools import partial

from sqlalchemy import Engine, TextClause, create_engine, text

from audience.reports.dashboards import dbroles
from audience.reports.dashboards.superset_hooks import role_password

#: The dashboard's queries, in the shape Superset sends them (RLS filter included).
QUERIES = {
    "visits per day": "SELECT day, SUM(visits) FROM {schema}report_visits_daily "
                      "WHERE store_id = :store GROUP BY day",
    "footfall by hour": "SELECT hour, SUM(visits) FROM {schema}report_visits_hourly "
                        "WHERE store_id = :store GROUP BY hour",
    "dwell bands": "SELECT dwell_band, SUM(visits) FROM {schema}report_dwell_daily "
                   "WHERE store_id = :store GROUP BY dwell_band",
    "age": "SELECT age_bracket, SUM(visits) FROM {schema}report_age_daily "
           "WHERE store_id = :store GROUP BY age_bracket",
}


def _median_ms(fn: Callable[[], object], runs: int) -> float:
    fn()  # warm the caches once
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return round(1000 * statistics.median(times), 2)


def isolation_cost(owner: Engine, store: str, key: str, runs: int = 20
                   ) -> dict[str, dict[str, float]]:
    """Median ms per query: ``owner`` (public views), ``manager`` (own role, dashboards
    views) and ``manager, new connection``; and the rows each returned (must be equal)."""
    user = f"bench-{uuid.uuid4().hex[:8]}"
    role = dbroles.grant_stores(owner, user, [store], key)
    manager = create_engine(owner.url.set(username=role, password=role_password(role, key)))
    out: dict[str, dict[str, float]] = {}
    try:
        args = {"store": store}

        def fresh(query: TextClause) -> object:
            with manager.connect() as c:
                return c.execute(query, args).all()

        with owner.connect() as oc, manager.connect() as mc:
            for name, sql in QUERIES.items():
                public = text(sql.format(schema="public."))
                isolated = text(sql.format(schema=""))
                rows_owner = sorted(oc.execute(public, args).all())
                rows_manager = sorted(mc.execute(isolated, args).all())
                out[name] = {
                    "owner_ms": _median_ms(partial(oc.execute, public, args), runs),
                    "manager_ms": _median_ms(partial(mc.execute, isolated, args), runs),
                    "manager_new_connection_ms": _median_ms(partial(fresh, isolated), runs),
                    "rows": len(rows_owner),
                    "same_rows": float(rows_owner == rows_manager),
                }
    finally:
        manager.dispose()
        with owner.begin() as conn:
            conn.execute(text(f"DELETE FROM {dbroles.ACCESS} WHERE db_role = :r"), {"r": role})
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
    return out
