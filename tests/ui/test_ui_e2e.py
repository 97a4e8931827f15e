"""End to end: the real ``airflow api-server`` serves the safeload page, Chromium logs in and reads it.

History is made by real loads (PartitionLoader), gates (run_gate, volume_check) and a
contract check on the test PostgreSQL. The server runs with Airflow 3's default
SimpleAuthManager, a ``viewer`` user and its password from the passwords file; Debian's
Chromium is driven by Playwright (docs/decisions/011). Screenshots go to
``$SAFELOAD_ARTIFACTS`` (default tests/artifacts/ui/, git-ignored).

Nothing is mocked. Every wait is bounded.
"""

from __future__ import annotations

import csv
import json
import os
import shutil
import subprocess
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest

from apiserver import AIRFLOW, airflow_env, api_server, request
from ci import in_ci

from safeload.contracts.check import check_source
from safeload.contracts.history import record_contract_check
from safeload.loads.loader import PartitionLoader
from safeload.quality.gate import run_gate, volume_check, write_history
from safeload.quality.suite import build_suite
from safeload.ui.links import report_path

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
CONTRACT = ROOT / "include/contracts/orders.yaml"
SUITE = ROOT / "include/expectations/orders.json"
HEADER = ["order_id", "order_date", "customer_id", "amount", "currency", "status", "created_at"]
DAYS = [f"2025-05-0{d}" for d in range(1, 9)]
SPIKE_DAY, BAD_DAY, DRIFT_DAY = "2025-05-08", "2025-05-06", "2025-05-07"
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                  "--disable-component-update", "--disable-sync"]


def _chromium() -> str:
    """Debian's chromium; skipped without it on a developer's machine, a failure in CI."""
    path = os.environ.get("SAFELOAD_CHROMIUM") or shutil.which("chromium") or shutil.which("chromium-browser")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        path = None
        why = "the playwright package is not installed (pip install -r requirements-dev.txt -c constraints.txt)"
    else:
        why = "Debian's chromium is not installed (apt-get install -y chromium)"
    if path:
        return path
    if in_ci():
        pytest.fail(f"CI=true and {why}: the browser test must run in CI; .ci/run installs it")
    pytest.skip(f"{why}; the browser test needs it")


# ------------------------------------------------------------------------- history

def _orders_csv(path: Path, day: str, n: int, *, amount: str = "42.50", bad: int = 0, coupon: bool = False) -> str:
    with open(path, "w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(HEADER + (["coupon"] if coupon else []))
        for i in range(1, n + 1):
            row = [int(day[-2:]) * 100_000 + i, day, 1000 + i % 37, amount, "EUR", "paid", f"{day}T10:00:00Z"]
            w.writerow(row + (["SPRING"] if coupon else []))
        for i in range(bad):
            w.writerow([9_000_000 + i, day, 7, "12,5O", "EUR", "paid", f"{day}T10:00:00Z"])
    return str(path)


def _run_id(day: str) -> str:
    return f"scheduled__{day}T00:00:00+00:00"


def _load_day(uri: str, tmp: Path, day: str, n: int, **csv_kw) -> None:
    """One day of orders_daily: stage, gate the staging (suite + contract rules + volume), publish."""
    run_id = _run_id(day)
    audit = {"dag_id": "orders_daily", "run_id": run_id, "task_id": "load_orders", "try_number": 1}
    loader = PartitionLoader(lambda: psycopg.connect(uri), table="public.orders", partition_column="order_date",
                             partition_value=day, run_key=f"orders_daily/{run_id}/public.orders", max_bad_rows=5,
                             audit=audit)
    staged = loader.stage(_orders_csv(tmp / f"orders_{day}.csv", day, n, **csv_kw))
    store = {"target": staged.target, "partition_value": day, "run_key": f"orders_daily/{run_id}/{staged.target}",
             **{k: audit[k] for k in ("dag_id", "run_id", "task_id")}}
    gate = run_gate(uri, table=f"safeload_staging.{staged.staging_table}",
                    suite=build_suite(suite_path=str(SUITE), contract_path=str(CONTRACT)), store=store)
    gate.add(vol := volume_check(uri, target=staged.target, rows=staged.rows_loaded, exclude_partition=day))
    write_history(uri, [vol], store=store)
    gate.raise_for_critical()
    loader.publish(staged)


def _seed(uri: str, tmp: Path) -> None:
    with psycopg.connect(uri, autocommit=True) as conn:
        conn.execute((ROOT / "include/sql/orders.sql").read_text())
        conn.execute("create table public.events (event_id bigint not null, event_date date not null, kind text)")
    for day in DAYS:
        if day == SPIKE_DAY:  # a duplicated feed: 4x the rows, and pricier (the mean check warns)
            _load_day(uri, tmp, day, 400, amount="480.00")
        else:
            _load_day(uri, tmp, day, 100 + int(day[-1]), bad=3 if day == BAD_DAY else 0)
    for day, coupon in ((DAYS[0], False), (DRIFT_DAY, True)):  # the producer added a column on the 7th
        src = _orders_csv(tmp / f"drift_{day}.csv", day, 5, coupon=coupon)
        report = check_source(str(CONTRACT), src).to_dict()
        record_contract_check(uri, report, table="public.orders",
                              audit={"dag_id": "orders_daily", "run_id": _run_id(day), "task_id": "check_orders",
                                     "try_number": 1})
    for day in DAYS[:3]:
        path = tmp / f"events_{day}.csv"
        path.write_text("event_id,event_date,kind\n" + "".join(f"{i},{day},click\n" for i in range(1, 21)))
        PartitionLoader(lambda: psycopg.connect(uri), table="public.events", partition_column="event_date",
                        partition_value=day, run_key=f"events/{day}").run(str(path))


# ------------------------------------------------------------------------- server

@pytest.fixture(scope="module")
def artifacts() -> Path:
    path = Path(os.environ.get("SAFELOAD_ARTIFACTS") or ROOT / "tests/artifacts") / "ui"
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture
def chromium() -> str:
    return _chromium()  # before the server: a skip should not cost a server start


@pytest.fixture
def server(chromium, pg_uri, tmp_path, artifacts):
    """``airflow api-server`` on 127.0.0.1 with the safeload plugin and SimpleAuthManager."""
    # the page reads the connection [safeload] ui_conn_id names (not the default 'warehouse')
    env, password = airflow_env(tmp_path / "airflow", ui_conn_uri=pg_uri)
    # Airflow's metadata DB is migrated while the history is seeded (both take seconds)
    migrate = subprocess.Popen([AIRFLOW, "db", "migrate"], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        _seed(pg_uri, tmp_path)
        out, _ = migrate.communicate(timeout=180)
    finally:
        if migrate.poll() is None:
            migrate.kill()
            migrate.wait(timeout=10)
    assert migrate.returncode == 0, out.decode()[-3000:]
    with api_server(env, artifacts / "api-server.log") as base:
        yield {"base": base, "user": "viewer", "password": password}


def _token(server) -> str:
    status, _, body = request(server["base"] + "/auth/token", headers={"Content-Type": "application/json"},
                              data=json.dumps({"username": server["user"], "password": server["password"]}).encode())
    assert status == 201, body
    return json.loads(body)["access_token"]


# ------------------------------------------------------------------------- the test

@pytest.mark.parametrize("ci", [pytest.param("true", id="ci"), pytest.param("", id="developer")])
def test_missing_chromium_skips_only_outside_ci(ci, monkeypatch, tmp_path):
    monkeypatch.setenv("PATH", str(tmp_path))  # an empty directory: no chromium on it
    monkeypatch.delenv("SAFELOAD_CHROMIUM", raising=False)
    monkeypatch.setenv("CI", ci)
    expected = pytest.fail.Exception if ci else pytest.skip.Exception
    with pytest.raises(expected, match="chromium"):
        _chromium()


def test_page_in_airflow_ui_shows_history_and_refuses_strangers(chromium, server, artifacts):
    base = server["base"]

    # --- refused without a login: no data in any answer
    status, _, body = request(base + "/safeload/", headers={"Accept": "application/json"})
    assert status == 401 and "public.orders" not in body
    status, headers, body = request(base + "/safeload/table?target=public.orders", headers={"Accept": "text/html"})
    assert status == 303 and "/auth/login" in headers["location"] and "public.orders" not in body
    status, _, body = request(base + "/safeload/", headers={"Authorization": "Bearer not-a-jwt"})
    assert status in (401, 403) and "public.orders" not in body
    # ... and served with Airflow's own token, which is what the UI's cookie carries
    token = _token(server)
    status, _, body = request(base + "/safeload/", headers={"Authorization": f"Bearer {token}"})
    assert status == 200 and "public.orders" in body and "public.events" in body
    status, _, body = request(base + "/api/v2/plugins", headers={"Authorization": f"Bearer {token}"})
    plugin = next(p for p in json.loads(body)["plugins"] if p["name"] == "safeload")
    assert [a["url_prefix"] for a in plugin["fastapi_apps"]] == ["/safeload"]
    assert {v["destination"] for v in plugin["external_views"]} == {"nav", "task_instance"}

    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        # Playwright's launch starts from a new empty profile (a temporary --user-data-dir)
        browser = p.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_FLAGS, timeout=30_000)
        try:
            page = browser.new_page(viewport={"width": 1400, "height": 900})
            page.set_default_timeout(20_000)
            page.set_default_navigation_timeout(30_000)

            # --- the page sends a stranger to Airflow's login, which sends them back
            page.goto(base + "/safeload/")
            page.wait_for_url("**/auth/login**")
            page.fill("input[name=username]", server["user"])
            page.fill("input[name=password]", server["password"])
            page.click("button[type=submit]")
            page.wait_for_url("**/safeload/")
            page.wait_for_selector("table#tables")

            # --- overview: both tables, the latest partition, rows, the spike, drift, checks
            orders = page.locator('tr[data-target="public.orders"]')
            text = orders.inner_text()
            assert SPIKE_DAY in text and "400" in text and "published" in text
            assert orders.locator(".badge.spike").count() == 1  # 400 rows against ~105: a spike
            assert orders.locator("svg.spark polyline").count() == 1
            assert "warned" in text  # the mean and volume checks of the latest partition
            assert "warn" in text and "1 change(s)" in text  # the coupon column
            events = page.locator('tr[data-target="public.events"]').inner_text()
            assert "2025-05-03" in events and "20" in events and "outside Airflow" in events
            log = orders.locator("a.log").get_attribute("href")
            assert log == f"/dags/orders_daily/runs/{quote(_run_id(SPIKE_DAY), safe='')}/tasks/load_orders?try_number=1"
            page.screenshot(path=str(artifacts / "overview.png"), full_page=True)

            # --- one table: row counts, checks over time against bounds, drift, quarantine, history
            page.click('a[href*="target=public.orders"]')
            page.wait_for_selector("#history")
            assert page.locator("#history tbody tr").count() == len(DAYS)
            mean = page.locator('.check[data-check="expect_column_mean_to_be_between (amount)"]')
            assert "warned" in mean.inner_text() and "failed on 1 of 8" in mean.inner_text()
            assert mean.locator("polyline.observed").count() == 1 and mean.locator("polyline.bound").count() == 2
            assert page.locator('.check[data-check="volume_check"]').count() == 1
            assert page.locator('.check[data-check="expect_table_row_count_to_be_between"]').count() == 1
            drift = page.locator("#drift").inner_text()
            assert "coupon" in drift and "additive" in drift and "contract check" in drift
            quarantine = page.locator("#quarantine").inner_text()
            assert BAD_DAY in quarantine and "3 of 109" in quarantine and "12,5O" in quarantine
            assert "2 outside it" not in page.locator("#row-counts").inner_text()  # exactly the spike day
            assert f"{SPIKE_DAY} (400)" in page.locator("#row-counts").inner_text()
            page.screenshot(path=str(artifacts / "table.png"), full_page=True)

            # --- the operator extra link's target: the task's report, its rows marked
            page.goto(base + report_path(dag_id="orders_daily", run_id=_run_id(BAD_DAY), task_id="load_orders",
                                         try_number=1))
            page.wait_for_selector("#loads")
            assert page.locator("#loads tr.mine").count() == 1 and BAD_DAY in page.locator("#loads").inner_text()
            assert page.locator("#task-checks tr.mine").count() >= 5

            # --- and inside Airflow's own UI: the menu entry renders the page in the UI
            page.goto(base + "/plugin/safeload")
            frame = page.frame_locator('iframe[src*="safeload"]')
            frame.locator("table#tables").wait_for()
            assert "public.orders" in frame.locator("table#tables").inner_text()
            page.screenshot(path=str(artifacts / "airflow-ui.png"), full_page=False)
        finally:
            browser.close()
