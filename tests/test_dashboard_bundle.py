"""The Superset bundle as code: consistent with itself and with the report views (no server)."""

from __future__ import annotations

import io
import json
import zipfile
from typing import Any

import pytest
import yaml

from audience.reports.dashboards.bundle import ROOT, build, load_assets, query_context, superset_uri
from audience.storage.schema import VIEWS

ASSETS = load_assets()
DATASETS = {d["uuid"]: d for rel, d in ASSETS.items() if rel.startswith("datasets/")}
CHARTS = {d["uuid"]: d for rel, d in ASSETS.items() if rel.startswith("charts/")}
(DASHBOARD,) = [d for rel, d in ASSETS.items() if rel.startswith("dashboards/")]


def test_uuids_are_unique_and_fixed() -> None:
    uuids = [d["uuid"] for d in ASSETS.values() if "uuid" in d]
    assert len(uuids) == len(set(uuids)) == len(ASSETS) - 1  # all but metadata.yaml
    assert build("sqlite:///x.db").zip_bytes == build("sqlite:///x.db").zip_bytes  # stable


@pytest.mark.parametrize("dataset", list(DATASETS.values()), ids=lambda d: d["table_name"])
def test_datasets_read_k_suppressed_views_with_their_columns(dataset: dict[str, Any]) -> None:
    view = VIEWS.tables[dataset["table_name"]]
    assert view.name.startswith("report_")
    plain = {c["column_name"] for c in dataset["columns"] if not c["expression"]}
    assert plain <= set(view.c.keys())
    assert dataset["main_dttm_col"] in plain
    assert "store_id" in plain  # the store filter works on every chart
    if "camera_id" not in plain:  # figures per store (the shares): the camera filter skips them
        assert set(_charts_of(dataset)) <= set(_camera_filter_excluded()), dataset["table_name"]


def _charts_of(dataset: dict[str, Any]) -> list[int]:
    """The dashboard's chart ids of the charts reading ``dataset``."""
    uuids = {c["uuid"] for c in CHARTS.values() if c["dataset_uuid"] == dataset["uuid"]}
    return [v["meta"]["chartId"] for v in DASHBOARD["position"].values()
            if isinstance(v, dict) and v.get("type") == "CHART" and v["meta"]["uuid"] in uuids]


def _camera_filter_excluded() -> list[int]:
    (camera,) = [f for f in DASHBOARD["metadata"]["native_filter_configuration"]
                 if f["targets"][0].get("column", {}).get("name") == "camera_id"]
    return list(camera["scope"]["excluded"])


def test_the_share_table_is_left_out_of_the_camera_filter_only() -> None:
    (shares,) = [d for d in DATASETS.values() if d["table_name"] == "report_share_estimates"]
    ids = _charts_of(shares)
    assert ids and _camera_filter_excluded() == ids
    chart_ids = [v["meta"]["chartId"] for v in DASHBOARD["position"].values()
                 if isinstance(v, dict) and v.get("type") == "CHART"]
    assert chart_ids.count(ids[0]) == 1  # Superset maps exclusions by this id on import


@pytest.mark.parametrize("chart", list(CHARTS.values()), ids=lambda c: c["slice_name"])
def test_charts_use_their_dataset(chart: dict[str, Any]) -> None:
    dataset = DATASETS[chart["dataset_uuid"]]
    q = query_context(chart["params"])["queries"][0]
    columns = {c["column_name"] for c in dataset["columns"]}
    metrics = {m["metric_name"] for m in dataset["metrics"]}
    assert set(q["columns"]) <= columns
    assert set(q["metrics"]) <= metrics
    assert [f["col"] for f in q["filters"]] == [dataset["main_dttm_col"]]


def test_dashboard_lays_out_every_chart_and_filters_store_camera_period() -> None:
    pos = DASHBOARD["position"]
    placed = {v["meta"]["uuid"] for v in pos.values()
              if isinstance(v, dict) and v.get("type") == "CHART"}
    assert placed == set(CHARTS)
    for key, node in pos.items():  # ROOT_ID -> GRID_ID -> ROW -> CHART, every child exists
        for child in node.get("children", []) if isinstance(node, dict) else []:
            assert child in pos, f"{key} -> {child}"
    filters = DASHBOARD["metadata"]["native_filter_configuration"]
    assert [f["filterType"] for f in filters] == ["filter_select", "filter_select", "filter_time"]
    assert [f["targets"][0].get("column", {}).get("name") for f in filters] == [
        "store_id", "camera_id", None]
    assert all(f["targets"][0].get("datasetUuid") in (None, *DATASETS) for f in filters)


@pytest.mark.parametrize(("url", "uri", "password"), [
    ("postgresql://u:s3cret@db:5432/audience", "postgresql+psycopg2://u:XXXXXXXXXX@db:5432/audience",
     "s3cret"),
    ("postgresql://u@db/audience", "postgresql+psycopg2://u@db/audience", None),
    ("sqlite:////data/audience.db", "sqlite:////data/audience.db", None),
])
def test_database_password_travels_beside_the_bundle(url: str, uri: str,
                                                     password: str | None) -> None:
    assert superset_uri(url) == (uri, password)
    bundle = build(url)
    zf = zipfile.ZipFile(io.BytesIO(bundle.zip_bytes))
    db = yaml.safe_load(zf.read(f"{ROOT}/databases/audience.yaml"))
    assert db["sqlalchemy_uri"] == uri
    assert all(password is None or password not in zf.read(n).decode() for n in zf.namelist())
    assert bundle.passwords == ({"databases/audience.yaml": password} if password else {})


def test_zipped_charts_carry_a_query_context() -> None:
    zf = zipfile.ZipFile(io.BytesIO(build("sqlite:///x.db").zip_bytes))
    charts = [n for n in zf.namelist() if "/charts/" in n]
    assert len(charts) == len(CHARTS)
    for name in charts:
        doc = yaml.safe_load(zf.read(name))
        assert json.loads(doc["query_context"])["form_data"] == doc["params"]
