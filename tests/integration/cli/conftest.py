"""What the tests of the `safeload` command share: a day's orders file from the generator."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "include"))


@pytest.fixture
def day(tmp_path):
    import datetime as dt

    import generate_orders

    def make(faults=(), rows=200):
        return str(generate_orders.write(tmp_path / f"d{len(list(tmp_path.iterdir()))}", dt.date(2024, 5, 2), rows,
                                         set(faults)))
    return make
