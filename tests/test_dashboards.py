"""Superset dashboards end to end: a real Superset, a real PostgreSQL, a real headless Chromium.

One module-scoped Superset (its own virtualenv, `make superset-env`) serves every test here:
visits come from a pipeline run on the bundled clip plus seeded visits for two stores, the
bundle is provisioned with the CLI, every chart's /data endpoint is checked against SQL on the
same views, the dashboard is rendered in Chromium and a store manager sees one store only.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from browser import chromium
from conftest import _pg_database
from sqlalchemy import create_engine, text
from store_data import visits as seeded_visits

from audience.reports.dashboards.bundle import dialect_sql, load_assets, query_context
from audience.reports.dashboards.client import Superset, SupersetError
from audience.reports.dashboards.dbroles import drop_roles
from audience.reports.dashboards.serve import Local, prepare, start, wait_healthy
from audience.storage.db import migrate, open_engine
from audience.storage.sink import VisitSink
from audience.storage.sqltime import DWELL_BANDS

pytestmark = [pytest.mark.superset, pytest.mark.postgres, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
AUDIENCE = str(Path(sys.executable).with_name("audience"))
CLIP = ROOT / "ingest/assets/face-demographics-walking-and-pause.gif"
VENV = Path(os.environ.get("AUDIENCE_SUPERSET_VENV", ROOT / ".venv-superset"))
SCREENSHOT_DIR = ROOT / "out"
ADMIN_PASSWORD = "admin-pw-for-tests"
# User names are the operator's choice: these carry no store id, so a leak would show.
MANAGER, MANAGER_PASSWORD, MANAGER_STORE = "manager-1", "south-pw-123", "south"
OTHER_MANAGER, OTHER_STORE = "manager-2", "north"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _cli(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("SUPERSET_") and k != "DASHBOARDS_ROLE_KEY"}
    r = subprocess.run([AUDIENCE, *args], capture_output=True, text=True, timeout=300,
                       env=env, stdin=subprocess.DEVNULL)
    if check and r.returncode != 0:
        raise AssertionError(f"audience {' '.join(args)} exited {r.returncode}:\n{r.stderr}")
    return r


@pytest.fixture(scope="module")
def visits_db() -> Iterator[str]:
    """A PostgreSQL database holding a pipeline run's visits and seeded ones for two stores."""
    for url in _pg_database():
        engine = open_engine(url)
        migrate(engine)
        _cli("run", "--source", str(CLIP), "--store", "north", "--camera", "entrance",
             "--db", url)
        sink = VisitSink(engine, batch_size=500)
        for v in seeded_visits():
            sink.add(v)
        sink.flush()
        try:
            yield url
        finally:
            drop_roles(engine)  # roles outlive the database
            engine.dispose()


@pytest.fixture(scope="module")
def superset(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Local]:
    if not (VENV / "bin" / "superset").exists():
        pytest.fail(f"no Superset virtualenv at {VENV}: run `make superset-env`", pytrace=False)
    local = Local(venv=VENV, home=tmp_path_factory.mktemp("superset"), port=_free_port())
    local.role_key()  # written to home/role_key before Superset starts
    prepare(local, "admin", ADMIN_PASSWORD)
    proc = start(local, workers=2)
    try:
        wait_healthy(local.url, proc, timeout_s=180)
        yield local
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="module")
def provisioned(superset: Local, visits_db: str) -> Local:
    key = ("--role-key-file", str(superset.home / "role_key"))
    r = _cli("dashboards", "provision", "--superset-url", superset.url, "--user", "admin",
             "--password", ADMIN_PASSWORD, "--db", visits_db, *key)
    assert "store roles: north, south" in r.stdout
    assert "share estimates: " in r.stdout
    # Every day: the seeded days may lie before provision's default window.
    r = _cli("dashboards", "shares", "--all", "--db", visits_db)
    assert r.stdout.splitlines()[-1].startswith("wrote ")
    for user, store in ((MANAGER, MANAGER_STORE), (OTHER_MANAGER, OTHER_STORE)):
        _cli("dashboards", "grant", "--user", user, "--store", store, "--password",
             MANAGER_PASSWORD, "--superset-url", superset.url, "--admin-password",
             ADMIN_PASSWORD, "--db", visits_db, *key)
    return superset


# --- the numbers --------------------------------------------------------------------------------

def _expected(visits_db: str, chart: dict[str, Any], store: str | None) -> list[tuple[Any, ...]]:
    """What the chart must show, computed with plain SQL on the same view."""
    assets = load_assets()
    dataset = next(d for rel, d in assets.items()
                   if rel.startswith("datasets/") and d["uuid"] == chart["dataset_uuid"])
    exprs = {c["column_name"]: dialect_sql(c["expression"], "postgresql")
             for c in dataset["columns"]}
    metrics = {m["metric_name"]: m["expression"] for m in dataset["metrics"]}
    q = query_context(chart["params"])["queries"][0]
    cols = [f"{exprs.get(c) or c} AS {c}" for c in q["columns"]]
    mets = [f"{metrics[m]} AS {m}" for m in q["metrics"]]
    sql = f"SELECT {', '.join(cols + mets)} FROM {dataset['table_name']}"
    if store:
        sql += f" WHERE store_id = '{store}'"
    if cols:
        sql += " GROUP BY " + ", ".join(str(i + 1) for i in range(len(cols)))
    engine = create_engine(visits_db)
    try:
        with engine.connect() as conn:
            rows = conn.execute(text(sql)).all()
    finally:
        engine.dispose()
    return sorted(_norm(r) for r in rows if any(v is not None for v in r[len(cols):]))


def _norm(row: Any) -> tuple[Any, ...]:
    out: list[Any] = []
    for v in row:
        if isinstance(v, date) and not isinstance(v, datetime):  # a local day (Superset: ms)
            v = datetime(v.year, v.month, v.day)
        if isinstance(v, datetime):  # store-local wall clock: Superset reads naive as UTC
            v = int((v if v.tzinfo else v.replace(tzinfo=UTC)).timestamp() * 1000)
        elif isinstance(v, float) and v.is_integer() and v > 1e11:  # epoch ms from Superset
            v = int(v)
        elif isinstance(v, int | float) and not isinstance(v, bool):
            v = round(float(v), 6)
        out.append(v)
    return tuple(out)


def _charts() -> list[dict[str, Any]]:
    return [d for rel, d in load_assets().items() if rel.startswith("charts/")]


def _shown(sup: Superset, chart: dict[str, Any]) -> list[tuple[Any, ...]]:
    hit = [c for c in sup.find("chart") if c["slice_name"] == chart["slice_name"]]
    assert hit, f"chart {chart['slice_name']!r} is not visible to {sup.user}"
    result = sup.call("GET", f"/api/v1/chart/{hit[0]['id']}/data/")["result"][0]
    cols = result["colnames"]
    return sorted(_norm(tuple(row[c] for c in cols)) for row in result["data"])


def _inventory(sup: Superset) -> dict[str, list[int]]:
    return {r: sorted(i["id"] for i in sup.find(r)) for r in
            ("database", "dataset", "chart", "dashboard", "security/roles", "rowlevelsecurity")}


def test_every_chart_matches_sql_on_the_views(provisioned: Local, visits_db: str) -> None:
    admin = Superset(provisioned.url, "admin", ADMIN_PASSWORD)
    for chart in _charts():
        want = _expected(visits_db, chart, store=None)
        assert want, f"{chart['slice_name']}: the test data must show something"
        assert _shown(admin, chart) == want, chart["slice_name"]


def test_store_manager_sees_only_their_store(provisioned: Local, visits_db: str) -> None:
    manager = Superset(provisioned.url, MANAGER, MANAGER_PASSWORD)
    for chart in _charts():
        mine = _expected(visits_db, chart, store=MANAGER_STORE)
        assert _shown(manager, chart) == mine, chart["slice_name"]
    total = [c for c in _charts() if c["slice_name"] == "Visitors"][0]
    assert _expected(visits_db, total, None) != _expected(visits_db, total, MANAGER_STORE)


# --- a store manager who knows some SQL ---------------------------------------------------------

def _forbidden(visits_db: str, home: Path) -> list[str]:
    """Text no answer to the manager may hold: the other store's id, its manager, its
    Superset role, a server file's content and server settings."""
    from audience.reports.dashboards.superset_hooks import store_role

    engine = create_engine(visits_db)
    try:
        with engine.connect() as conn:
            data_dir = conn.execute(text("SHOW data_directory")).scalar()
            hostname = str(conn.execute(text("SELECT pg_read_file('/etc/hostname')")).scalar())
    finally:
        engine.dispose()
    key = (home / "role_key").read_text().strip()
    return [OTHER_STORE, OTHER_MANAGER, store_role(OTHER_STORE, key), str(data_dir),
            hostname.strip()]


def _dataset_id(sup: Superset, table: str) -> int:
    return next(d["id"] for d in sup.find("dataset") if d["table_name"] == table)


def _sql(expr: str, label: str) -> dict[str, str]:
    return {"expressionType": "SQL", "sqlExpression": expr, "label": label}


def _chart_data(sup: Superset, ds: int, result_type: str, *, metrics: list[Any],
                columns: list[Any]) -> Any:
    body = {"datasource": {"id": ds, "type": "table"}, "force": True,
            "queries": [{"columns": columns, "metrics": metrics, "filters": [],
                         "row_limit": 50, "extras": {"having": "", "where": ""},
                         "orderby": []}],
            "result_format": "json", "result_type": result_type}
    return sup.session.post(f"{sup.url}/api/v1/chart/data", json=body, timeout=120)


#: Why an attack must fail: the database refuses it, or Superset refuses a subquery.
REFUSED = ("permission denied", "cannot contain sub-queries")


def _web_login(url: str, user: str, password: str) -> Any:
    """A browser-like client (cookie login): the legacy /superset/ views take no token."""
    import re

    import requests

    web = requests.Session()
    page = web.get(f"{url}/login/", timeout=60).text
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page)
    assert token, "no CSRF token on the login page"
    r = web.post(f"{url}/login/", data={"username": user, "password": password,
                                        "csrf_token": token.group(1)}, timeout=60)
    assert r.ok and "/login" not in r.url, f"cookie login as {user} failed"
    csrf = web.get(f"{url}/api/v1/security/csrf_token/", timeout=60).json()["result"]
    web.headers.update({"X-CSRFToken": csrf, "Referer": url})
    return web


def _legacy_form(ds: int, metric: dict[str, str]) -> dict[str, Any]:
    """Form data of a chart type that /superset/explore_json/ still serves (bullet)."""
    return {"datasource": f"{ds}__table", "viz_type": "bullet", "metric": metric,
            "groupby": [], "row_limit": 10, "adhoc_filters": [], "time_range": "No filter"}


def _rows(answer: Any) -> list[dict[str, Any]]:
    try:
        return [row for q in answer.json().get("result", []) for row in q.get("data") or []]
    except ValueError:
        return []


@pytest.mark.parametrize("where", ["metric", "column"])
def test_custom_sql_reaches_no_other_store_nor_the_server(provisioned: Local, visits_db: str,
                                                          where: str) -> None:
    from attacks import ATTACKS

    manager = Superset(provisioned.url, MANAGER, MANAGER_PASSWORD)
    forbidden = _forbidden(visits_db, provisioned.home)
    ds = _dataset_id(manager, "report_visits_daily")
    total = _sql("SUM(visits)", "n")
    control = _chart_data(manager, ds, "full", metrics=[total], columns=["store_id"])
    assert control.ok and {r["store_id"] for r in _rows(control)} == {MANAGER_STORE}
    leaks, ran, why = [], [], []
    for name, expr in ATTACKS.items():
        for result_type in ("full", "samples", "query"):
            if where == "metric":
                r = _chart_data(manager, ds, result_type, metrics=[_sql(expr, "x")], columns=[])
            else:
                r = _chart_data(manager, ds, result_type, metrics=[total],
                                columns=[_sql(expr, "x")])
            leaks += [(name, result_type, s) for s in forbidden if s in r.text]
            rows = _rows(r)
            if result_type == "full" and r.ok and rows:
                ran.append((name, r.text[:200]))
            elif result_type == "full" and not any(w in r.text for w in REFUSED):
                why.append((name, r.status_code, r.text[:200]))
            if result_type == "samples":
                assert {row.get("store_id") for row in rows} <= {MANAGER_STORE}, name
    assert not leaks, leaks
    assert not ran, f"these ran for a manager: {ran}"
    assert not why, f"refused, but not by the database or the subquery rule: {why}"


def test_explore_json_reaches_no_other_store(provisioned: Local, visits_db: str) -> None:
    from attacks import ATTACKS

    ds = _dataset_id(Superset(provisioned.url, MANAGER, MANAGER_PASSWORD), "report_visits_daily")
    manager = _web_login(provisioned.url, MANAGER, MANAGER_PASSWORD)
    forbidden = _forbidden(visits_db, provisioned.home)
    answered, why = [], []
    for name, expr in ATTACKS.items():
        form = _legacy_form(ds, _sql(expr, "x"))
        r = manager.post(f"{provisioned.url}/superset/explore_json/",
                         data={"form_data": json.dumps(form)}, timeout=120)
        assert not [s for s in forbidden if s in r.text], (name, r.text[:300])
        if r.ok and r.json().get("data"):
            answered.append(name)
        elif not any(w in r.text for w in REFUSED):
            why.append((name, r.status_code, r.text[:200]))
    assert not answered, f"explore_json ran these for a manager: {answered}"
    assert not why, f"refused, but not by the database or the subquery rule: {why}"
    # The same endpoint still answers a plain metric: the manager's store's total.
    r = manager.post(f"{provisioned.url}/superset/explore_json/",
                     data={"form_data": json.dumps(_legacy_form(ds, _sql("SUM(visits)", "n")))},
                     timeout=120)
    assert r.ok, r.text[:300]
    visitors = [c for c in _charts() if c["slice_name"] == "Visitors"][0]
    (want,) = _expected(visits_db, visitors, MANAGER_STORE)[0]
    assert r.json()["data"]["measures"] == [want]


RELATED = ["/api/v1/dashboard/related/roles", "/api/v1/dashboard/related/owners",
           "/api/v1/dashboard/related/created_by", "/api/v1/chart/related/owners",
           "/api/v1/chart/related/created_by", "/api/v1/dataset/related/owners",
           "/api/v1/dashboard/related/roles?q=(include_ids:!(1,2,3,4,5,6,7,8,9,10,11,12))"]


def test_user_and_role_lists_name_no_other_store(provisioned: Local, visits_db: str) -> None:
    manager = Superset(provisioned.url, MANAGER, MANAGER_PASSWORD)
    admin = Superset(provisioned.url, "admin", ADMIN_PASSWORD)
    forbidden = _forbidden(visits_db, provisioned.home)
    for path in RELATED:
        r = manager.session.get(f"{provisioned.url}{path}", timeout=60)
        assert r.status_code == 403, (path, r.status_code)
        assert not [s for s in forbidden if s in r.text], path
    for path in ("/api/v1/me/", "/api/v1/me/roles/", "/api/v1/dashboard/store-audience"):
        r = manager.session.get(f"{provisioned.url}{path}", timeout=60)
        assert r.ok and not [s for s in forbidden if s in r.text], (path, r.text[:300])
    # Admins keep the lists; they show the other manager, so the check above means something.
    owners = admin.session.get(f"{provisioned.url}/api/v1/dataset/related/owners", timeout=60)
    assert owners.ok and OTHER_MANAGER in owners.text
    roles = admin.session.get(f"{provisioned.url}{RELATED[0]}", timeout=60)
    assert roles.ok and forbidden[2] in roles.text and OTHER_STORE not in roles.text
    # The same with a browser's cookie login instead of an API token.
    related = f"{provisioned.url}/api/v1/dataset/related/owners"
    assert _web_login(provisioned.url, MANAGER, MANAGER_PASSWORD).get(
        related, timeout=60).status_code == 403
    assert _web_login(provisioned.url, "admin", ADMIN_PASSWORD).get(related, timeout=60).ok


def test_provisioning_twice_changes_nothing(provisioned: Local, visits_db: str) -> None:
    admin = Superset(provisioned.url, "admin", ADMIN_PASSWORD)
    before = _inventory(admin)
    key = ("--role-key-file", str(provisioned.home / "role_key"))
    _cli("dashboards", "provision", "--superset-url", provisioned.url, "--user", "admin",
         "--password", ADMIN_PASSWORD, "--db", visits_db, *key)
    _cli("dashboards", "grant", "--user", MANAGER, "--store", MANAGER_STORE,
         "--superset-url", provisioned.url, "--admin-password", ADMIN_PASSWORD,
         "--db", visits_db, *key)
    assert _inventory(admin) == before
    assert len(before["chart"]) == len(_charts())
    rules = admin.find("rowlevelsecurity")
    assert sorted(r["clause"] for r in rules) == ["store_id = 'north'", "store_id = 'south'"]


@pytest.mark.parametrize(("args", "code", "message"), [
    (["--password", "wrong"], 2, "refused the login for user 'admin'"),
    (["--superset-url", "http://127.0.0.1:9"], 3, "cannot reach Superset at http://127.0.0.1:9"),
])
def test_provision_errors_are_one_clear_line(provisioned: Local, visits_db: str, args: list[str],
                                             code: int, message: str) -> None:
    base = {"--superset-url": provisioned.url, "--password": ADMIN_PASSWORD}
    base.update(dict(zip(args[::2], args[1::2], strict=True)))
    r = _cli("dashboards", "provision", "--db", visits_db,
             *[x for kv in base.items() for x in kv], check=False)
    assert r.returncode == code, r.stderr
    assert message in r.stderr
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


def test_grant_to_unknown_user_without_password_says_what_to_do(provisioned: Local,
                                                                visits_db: str) -> None:
    r = _cli("dashboards", "grant", "--user", "nobody", "--store", "north", "--superset-url",
             provisioned.url, "--admin-password", ADMIN_PASSWORD, "--role-key-file",
             str(provisioned.home / "role_key"), "--db", visits_db, check=False)
    assert r.returncode == 2
    assert "no user 'nobody': pass --password" in r.stderr


def test_client_rejects_unsafe_store_ids() -> None:
    from audience.reports.dashboards.provision import rls_clause

    assert rls_clause("north-1") == "store_id = 'north-1'"
    with pytest.raises(SupersetError, match="characters"):
        rls_clause("x' OR '1'='1")


# --- the browser ---------------------------------------------------------------------------------

def _login(browser: Any, url: str, user: str, password: str) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(f"{url}/login/")
    name = WebDriverWait(browser, 60).until(
        ec.element_to_be_clickable((By.CSS_SELECTOR, "input#username")))
    name.send_keys(user)
    browser.find_element(By.CSS_SELECTOR, "input#password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "button[type=submit]").click()
    WebDriverWait(browser, 60).until(lambda b: "/login" not in b.current_url)


def _rendered(browser: Any, n_charts: int, timeout_s: float = 90) -> dict[str, str]:
    """Wait until every chart holder shows a drawing, a number or Superset's empty state (not
    an error); returns chart name -> rendered | empty | error: ... | loading."""
    from selenium.webdriver.common.by import By

    deadline = time.monotonic() + timeout_s
    states: dict[str, str] = {}
    while time.monotonic() < deadline:
        states = {}
        for holder in browser.find_elements(By.CSS_SELECTOR, "[data-test=chart-grid-component]"):
            name = holder.get_attribute("data-test-chart-name")
            if holder.find_elements(By.CSS_SELECTOR, "[role=alert], .ant-alert-error"):
                states[name] = "error: " + holder.text.replace("\n", " ")[:200]
            elif holder.find_elements(By.CSS_SELECTOR, "canvas") or holder.find_elements(
                    By.CSS_SELECTOR, ".header-line") or holder.find_elements(
                    By.CSS_SELECTOR, "table tbody tr"):
                states[name] = "rendered"
            elif "No results were returned" in holder.text:  # every cell k-suppressed
                states[name] = "empty"
            else:
                states[name] = "loading"
        if len(states) == n_charts and all(s != "loading" for s in states.values()):
            time.sleep(1.5)  # let the last animation settle before the screenshot
            return states
        time.sleep(0.5)
    return states


def _big_number(browser: Any, name: str) -> str:
    from selenium.webdriver.common.by import By

    holder = browser.find_element(
        By.CSS_SELECTOR, f"[data-test=chart-grid-component][data-test-chart-name='{name}']")
    return holder.find_element(By.CSS_SELECTOR, ".header-line").text.strip()


def _table_column(browser: Any, name: str) -> list[str]:
    """The first column of a table chart, top to bottom."""
    from selenium.webdriver.common.by import By

    holder = browser.find_element(
        By.CSS_SELECTOR, f"[data-test=chart-grid-component][data-test-chart-name='{name}']")
    return [row.find_elements(By.CSS_SELECTOR, "td")[0].text.strip()
            for row in holder.find_elements(By.CSS_SELECTOR, "table tbody tr")]


INTERVAL = re.compile(r"\d+% \(\d+-\d+%\)")


def _table_texts(browser: Any, name: str) -> list[str]:
    """The cells of a table chart that read like a share with its interval."""
    from selenium.webdriver.common.by import By

    holder = browser.find_element(
        By.CSS_SELECTOR, f"[data-test=chart-grid-component][data-test-chart-name='{name}']")
    cells = [td.text.strip() for td in holder.find_elements(By.CSS_SELECTOR, "table tbody td")]
    return [t for t in cells if "% (" in t]


def _share_texts(visits_db: str, store: str | None) -> set[str]:
    engine = create_engine(visits_db)
    try:
        with engine.connect() as conn:
            sql = "SELECT share_text FROM report_share_estimates"
            if store:
                sql += f" WHERE store_id = '{store}'"
            return set(conn.execute(text(sql)).scalars())
    finally:
        engine.dispose()


@pytest.mark.parametrize("who", ["admin", "manager"])
def test_dashboard_renders_in_headless_chromium(provisioned: Local, visits_db: str, who: str,
                                                tmp_path: Path) -> None:
    user, password, store = (("admin", ADMIN_PASSWORD, None) if who == "admin"
                             else (MANAGER, MANAGER_PASSWORD, MANAGER_STORE))
    from selenium.webdriver.common.by import By

    browser = chromium(tmp_path / "chrome", (1400, 2200))
    try:
        _login(browser, provisioned.url, user, password)
        browser.get(f"{provisioned.url}/superset/dashboard/store-audience/?standalone=1")
        states = _rendered(browser, len(_charts()))
        SCREENSHOT_DIR.mkdir(exist_ok=True)
        shot = SCREENSHOT_DIR / f"dashboard-{who}.png"
        browser.save_screenshot(str(shot))
        want = {c["slice_name"]: "rendered" if _expected(visits_db, c, store) else "empty"
                for c in _charts()}
        assert states == want, json.dumps(states)
        visitors = [c for c in _charts() if c["slice_name"] == "Visitors"][0]
        (want,) = _expected(visits_db, visitors, store)[0]
        assert _big_number(browser, "Visitors").replace(",", "") == str(int(want))
        # Dwell bands shortest first, as labelled in the views (no sort prefix such as "1.").
        shown = _table_column(browser, "Dwell time")
        assert shown == [label for _, label in DWELL_BANDS if label in shown], shown
        assert len(shown) >= 3
        # Each share with its interval, as `audience report` prints it: "52% (45-59%)".
        texts = _table_texts(browser, "Shares with 90% intervals")
        assert texts and all(INTERVAL.fullmatch(t) for t in texts), texts[:5]
        assert set(texts) <= _share_texts(visits_db, store)
        # The note beside it says what the interval means.
        assert browser.find_elements(By.XPATH, "//*[contains(text(), '9 times in 10')]")
        shares = browser.find_element(
            By.CSS_SELECTOR, "[data-test=chart-grid-component]"
            "[data-test-chart-name='Shares with 90% intervals']")
        browser.execute_script("arguments[0].scrollIntoView()", shares)
        shares.screenshot(str(SCREENSHOT_DIR / f"dashboard-shares-{who}.png"))
        assert shot.stat().st_size > 20_000
    finally:
        browser.quit()
