"""Reliability suite: faults, load and bad input against a real PostgreSQL.

Every test here is an integration test. The suite prints its table of figures at the
end of the run (see figures.py).
"""

from __future__ import annotations

import pytest

from reliability import figures


def pytest_collection_modifyitems(items):
    for item in items:
        if "reliability" in str(item.fspath):
            item.add_marker(pytest.mark.integration)
            item.add_marker(pytest.mark.reliability)


def pytest_terminal_summary(terminalreporter):
    if figures.FIGURES:
        mode = "full" if figures.FULL else "fast (make test); make reliability runs the full trials"
        terminalreporter.write_sep("=", f"safeload reliability figures: {mode}")
        terminalreporter.write_line(figures.table())
        terminalreporter.write_line(f"seed {figures.SEED} (replay: SAFELOAD_RELIABILITY_SEED={figures.SEED})")
