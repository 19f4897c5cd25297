"""The Superset asset bundle: YAML kept as code in ``bundle/``, zipped for `/api/v1/assets/import/`.

The YAML files are the source of truth (fixed uuids, so an import overwrites in place). Two
things are filled in here rather than written by hand:

- the database URI (``__DATABASE_URI__``), with its password masked: Superset takes the
  password separately, so it never sits in the bundle;
- each chart's ``query_context``, derived from its ``params``. Superset needs it to answer a
  chart's ``/data`` endpoint; deriving it keeps the two from drifting apart;
- dataset column expressions that differ between PostgreSQL and SQLite (``__NAME__``
  placeholders, ``DIALECT_SQL``).
"""

from __future__ import annotations

import io
import json
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy.engine import make_url

BUNDLE_DIR = Path(__file__).with_name("bundle")
ROOT = "audience_dashboards"  # the one root folder the import endpoint expects in the ZIP
DATABASE_FILE = "databases/audience.yaml"
MASK = "XXXXXXXXXX"

#: Calculated columns whose SQL differs per dialect: placeholder -> dialect -> expression.
#: The weekday is the same day of the week in 1-7 January 2024 (Monday to Sunday) as a
#: timestamp: a heat map sorts it as a date and labels it with '%a'.
DIALECT_SQL = {
    "__HOUR_OF_DAY__": {
        "postgresql": "CAST(EXTRACT(HOUR FROM hour) AS INTEGER)",
        "sqlite": "CAST(strftime('%H', hour) AS INTEGER)",
    },
    "__WEEKDAY__": {
        "postgresql": "CAST(DATE '2024-01-01' + (CAST(EXTRACT(ISODOW FROM day) AS INTEGER) - 1)"
                      " AS TIMESTAMP)",
        "sqlite": "datetime('2024-01-01', '+' || ((CAST(strftime('%w', day) AS INTEGER) + 6) "
                  "% 7) || ' days')",
    },
}


def dialect_sql(expression: str | None, dialect: str) -> str | None:
    """A dataset column's expression for ``dialect`` (placeholders filled in)."""
    if expression in DIALECT_SQL:
        return DIALECT_SQL[expression][dialect]
    return expression


@dataclass(frozen=True, slots=True)
class Bundle:
    zip_bytes: bytes
    passwords: dict[str, str]  #: bundle path -> database password, for the import call


def load_assets(directory: Path = BUNDLE_DIR) -> dict[str, dict[str, Any]]:
    """Every YAML file of the bundle, keyed by its path relative to ``directory``."""
    return {p.relative_to(directory).as_posix(): yaml.safe_load(p.read_text())
            for p in sorted(directory.rglob("*.yaml"))}


def superset_uri(db_url: str) -> tuple[str, str | None]:
    """The URI as Superset wants it (password masked) and the password itself."""
    url = make_url(db_url)
    if url.drivername.startswith("sqlite") and url.database and url.database != ":memory:":
        # Superset runs in another working directory: give it the file's absolute path.
        url = url.set(database=str(Path(url.database).resolve()))
    if url.drivername == "postgresql":
        url = url.set(drivername="postgresql+psycopg2")
    password = url.password
    if password:  # Superset's own mask: it swaps in the password sent beside the bundle
        url = url.set(password=MASK)
    return url.render_as_string(hide_password=False), (str(password) if password else None)


def query_context(params: dict[str, Any]) -> dict[str, Any]:
    """The query Superset runs for a chart's /data endpoint, built from its form data."""
    metrics = list(params.get("metrics") or [params["metric"]])
    columns = ([params["x_axis"]] if "x_axis" in params else []) + list(params.get("groupby", []))
    filters = [{"col": f["subject"], "op": "TEMPORAL_RANGE", "val": f["comparator"]}
               for f in params.get("adhoc_filters", []) if f.get("operator") == "TEMPORAL_RANGE"]
    query = {
        "filters": filters, "extras": {"having": "", "where": ""}, "applied_time_extras": {},
        "columns": columns, "metrics": metrics, "orderby": [[metrics[0], False]],
        "annotation_layers": [], "row_limit": params.get("row_limit", 10000), "series_limit": 0,
        "order_desc": True, "url_params": {}, "custom_params": {}, "custom_form_data": {},
    }
    return {"datasource": {"id": 0, "type": "table"}, "force": False, "queries": [query],
            "form_data": params, "result_format": "json", "result_type": "full"}


FIXED_TIME = (1980, 1, 1, 0, 0, 0)  # the earliest date ZIP can hold


def build(db_url: str, assets: dict[str, dict[str, Any]] | None = None) -> Bundle:
    """The ZIP to import, pointing Superset's `audience` database at ``db_url``
    (``assets``: the bundle as ``load_assets()`` returns it, if already loaded)."""
    uri, password = superset_uri(db_url)
    dialect = make_url(db_url).get_backend_name()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for rel, doc in (assets if assets is not None else load_assets()).items():
            if rel == DATABASE_FILE:
                doc = {**doc, "sqlalchemy_uri": uri}
            elif rel.startswith("charts/"):
                doc = {**doc, "query_context": json.dumps(query_context(doc["params"]))}
            elif rel.startswith("datasets/"):
                doc = {**doc, "columns": [{**c, "expression": dialect_sql(c["expression"],
                                                                          dialect)}
                                          for c in doc["columns"]]}
            # A fixed timestamp: writestr(name) stamps the clock, so two builds straddling a
            # second differed (a flaky test, and a bundle that is not reproducible).
            info = zipfile.ZipInfo(f"{ROOT}/{rel}", date_time=FIXED_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16  # rw-r--r-- once unpacked
            zf.writestr(info, yaml.safe_dump(doc, sort_keys=False))
    # Keys are paths inside the root folder: Superset strips the root before matching.
    passwords = {DATABASE_FILE: password} if password else {}
    return Bundle(buf.getvalue(), passwords)


def dataset_tables(assets: dict[str, dict[str, Any]] | None = None) -> list[str]:
    """Table (view) names of the bundle's datasets."""
    return [doc["table_name"] for rel, doc in (assets or load_assets()).items()
            if rel.startswith("datasets/")]
