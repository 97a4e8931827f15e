"""The page's HTML and links, on plain data: escaping, Airflow URLs, the operator extra link."""

from __future__ import annotations

import datetime as dt

import pytest

from safeload.ui import render
from safeload.ui.links import SafeloadReportLink, report_path

LINKS = render.Links("/airflow/safeload", "/airflow")
RUN = "manual__2025-05-01T00:00:00+00:00"


def _overview_row(**kw):
    row = {"target": "public.orders", "partition_value": "2025-05-01", "status": "published", "rows_loaded": 10,
           "rows_quarantined": 0, "trend": [10, 11, 10, 40], "volume": {"verdict": "spike", "lower": 5, "upper": 15},
           "checks": 3, "failed": 1, "warned": 0, "drift": None, "at": dt.datetime(2025, 5, 1, tzinfo=dt.timezone.utc),
           "dag_id": "orders_daily", "run_id": RUN, "task_id": "load", "try_number": 2}
    row.update(kw)
    return row


def test_log_link_is_airflow_3_task_route_with_quoted_run_id():
    assert LINKS.log("orders_daily", RUN, "load", 2) == (
        "/airflow/dags/orders_daily/runs/manual__2025-05-01T00%3A00%3A00%2B00%3A00/tasks/load?try_number=2")
    assert LINKS.log(None, None, None) == ""


def test_database_text_is_escaped():
    html = render.overview_page([_overview_row(target="public.<script>x</script>")], total=1, next_after=None,
                                after="", links=LINKS, conn_id="warehouse")
    assert "<script>x" not in html and "&lt;script&gt;x&lt;/script&gt;" in html


def test_overview_marks_spike_failures_and_links_log_out_of_the_iframe():
    html = render.overview_page([_overview_row()], total=1, next_after="public.orders", after="", links=LINKS,
                                conn_id="warehouse")
    assert 'class="badge spike"' in html and "1 failed" in html
    assert 'target="_top" class="log"' in html
    assert 'href="/airflow/safeload/?after=public.orders"' in html  # the next page


def test_line_chart_draws_bounds_and_marks_failures():
    points = [{"partition": f"2025-05-0{i}", "value": v, "lower": 0.0, "upper": 50.0, "success": v <= 50,
               "severity": "critical", "observed": v} for i, v in enumerate([10.0, 20.0, 90.0], start=1)]
    svg = render.line_chart(points)
    assert svg.count('class="bound"') == 2 and svg.count('class="observed"') == 1
    assert svg.count(f'fill="{render.BAD}"') == 1 and "2025-05-03: 90 (bounds 0 … 50) FAILED" in svg


def test_non_numeric_check_is_a_strip_of_dots():
    points = [{"partition": "p1", "value": None, "success": True, "severity": "warning", "observed": "2025-01-01"},
              {"partition": "p2", "value": None, "success": False, "severity": "warning", "observed": "2024-01-01"}]
    svg = render.line_chart(points)
    assert "polyline" not in svg and svg.count("<circle") == 2 and f'fill="{render.WARN}"' in svg


def test_report_link_points_at_the_task_page(monkeypatch):
    from airflow.models.taskinstancekey import TaskInstanceKey

    key = TaskInstanceKey(dag_id="orders_daily", task_id="load", run_id=RUN, try_number=3)
    monkeypatch.setenv("AIRFLOW__API__BASE_URL", "https://airflow.example.com/")
    link = SafeloadReportLink()
    assert link.name == "safeload report"
    assert link.get_link(None, ti_key=key) == "https://airflow.example.com" + report_path(
        dag_id="orders_daily", run_id=RUN, task_id="load", try_number=3)
    assert report_path(dag_id="d", run_id=RUN, task_id="t") == (
        "/safeload/task?dag_id=d&run_id=manual__2025-05-01T00%3A00%3A00%2B00%3A00&task_id=t")


@pytest.mark.parametrize("operator", [
    pytest.param("safeload.operators.load.PartitionOverwriteOperator", id="load"),
    pytest.param("safeload.operators.load.StagePartitionOperator", id="stage"),
    pytest.param("safeload.operators.quality.QualityGateOperator", id="gate"),
    pytest.param("safeload.operators.contract.SchemaContractCheckOperator", id="contract"),
    pytest.param("safeload.operators.incremental.ReloadPartitionsOperator", id="incremental-reload"),
])
def test_operators_carry_the_report_link(operator):
    import importlib

    module, _, name = operator.rpartition(".")
    cls = getattr(importlib.import_module(module), name)
    assert [type(link) for link in cls.operator_extra_links] == [SafeloadReportLink]


def test_a_far_bound_is_named_not_drawn():
    points = [{"partition": f"p{i}", "value": float(v), "lower": 1.0, "upper": 5_000_000.0, "success": True,
               "severity": "critical", "observed": v} for i, v in enumerate([100, 104, 98])]
    svg = render.line_chart(points)
    assert svg.count('class="bound"') == 1  # the lower bound, near the values
    assert "upper 5,000,000 (off scale)" in svg
    line = svg.split('class="observed"')[1].split('points="')[1].split('"')[0]
    xs = [float(pt.split(",")[0]) for pt in line.split()]
    assert xs == sorted(xs) and len(set(xs)) == 3  # one x per partition, left to right
