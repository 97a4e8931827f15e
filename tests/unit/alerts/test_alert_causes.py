"""The cause chain of an exception and where it was raised, as the alert shows them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from safeload.alerts import causes as c

HERE = Path(__file__).resolve()


def raise_chain():
    """RuntimeError from OperationalError from ConnectionRefusedError, raised in this file."""
    try:
        try:
            try:
                raise ConnectionRefusedError("db:5432 refused")
            except ConnectionRefusedError as refused:
                raise OSError("connection failed: server closed the connection") from refused
        except OSError:
            raise RuntimeError("load of orders failed for partition 2024-01-02")  # noqa: B904 (implicit context)
    except RuntimeError as e:
        return e


def test_chain_goes_from_the_outermost_to_the_root():
    chain = c.cause_chain(raise_chain())
    assert [type(e).__name__ for e in chain] == ["RuntimeError", "OSError", "ConnectionRefusedError"]
    assert c.describe(chain[-1]) == "ConnectionRefusedError: db:5432 refused"


def test_from_none_ends_the_chain():
    try:
        try:
            raise KeyError("inner")
        except KeyError:
            raise ValueError("outer") from None
    except ValueError as e:
        assert c.cause_chain(e) == [e]


def test_a_cycle_and_a_very_deep_chain_stay_bounded():
    a, b = ValueError("a"), ValueError("b")
    a.__cause__, b.__cause__ = b, a
    assert c.cause_chain(a) == [a, b]
    errors = [ValueError(f"level {i}") for i in range(30)]
    for outer, inner in zip(errors, errors[1:]):
        outer.__cause__ = inner
    chain = c.cause_chain(errors[0])
    assert len(chain) == c.MAX_CHAIN and chain[-1] is errors[-1]  # the root is always kept


def test_describe_shortens_and_keeps_one_line():
    text = c.describe(ValueError("line one\n  line two " + "x" * 1000 + " THE END"))
    assert len(text) <= c.MAX_CAUSE_TEXT and "\n" not in text
    assert text.startswith("ValueError: line one line two") and text.endswith("THE END")
    assert c.describe(KeyError()) == "KeyError"


def test_location_is_the_innermost_frame_outside_libraries():
    location = c.raising_location(c.cause_chain(raise_chain()), roots=[str(HERE.parents[1])])
    assert location.startswith("unit/alerts/test_alert_causes.py:")
    assert location.endswith(" in raise_chain")
    line = int(location.split(":")[1].split()[0])
    assert "ConnectionRefusedError" in HERE.read_text().splitlines()[line - 1]


def test_location_skips_library_frames_to_the_caller():
    def parse():
        return json.loads("{not json")

    try:
        parse()
    except ValueError as e:
        location = c.raising_location(c.cause_chain(e))
    assert location.endswith(" in parse") and "test_alert_causes.py" in location


def test_a_cause_made_but_not_raised_has_no_frames_the_outer_error_has():
    try:
        raise RuntimeError("load failed") from ConnectionRefusedError("db:5432 refused")
    except RuntimeError as e:
        chain = c.cause_chain(e)
    assert chain[-1].__traceback__ is None
    assert "test_alert_causes.py" in c.raising_location(chain)


def test_library_only_frames_are_marked_and_no_traceback_is_none():
    try:
        json.loads("{")
    except ValueError as e:
        error = e.with_traceback(e.__traceback__.tb_next)  # only json's own frames left
    assert c.raising_location([error]).endswith("(library code)")
    assert c.raising_location([ValueError("never raised")]) is None


@pytest.mark.parametrize(
    ("filename", "module", "library"),
    [
        pytest.param("/usr/lib/python3/dist-packages/x.py", None, True, id="dist-packages"),
        pytest.param("/venv/lib/python3.11/site-packages/psycopg/c.py", "psycopg.c", True, id="site-packages"),
        pytest.param("/opt/airflow/plugins/safeload/loads/loader.py", "safeload.loads.loader", True, id="safeload"),
        pytest.param(json.__file__, "json", True, id="stdlib"),
        pytest.param("/opt/airflow/dags/orders.py", "unusual_prefix_orders", False, id="dag-file"),
        pytest.param("<frozen importlib._bootstrap>", None, True, id="frozen"),
    ],
)
def test_what_counts_as_library_code(filename, module, library):
    assert c.is_library(filename, module) is library


def test_short_path_under_a_root_and_elsewhere():
    assert c.short_path("/opt/airflow/dags/team/orders.py", ["/opt/airflow/dags"]) == "dags/team/orders.py"
    assert c.short_path("/a/b/c/d/e.py") == "…/c/d/e.py"
    assert c.short_path("x/e.py") == "x/e.py"
