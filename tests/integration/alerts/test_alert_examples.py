"""docs/alerts.md shows each message kind as safeload sends it: the payloads in
docs/alerts/examples.json are built again here, by the real notifiers over HTTP to the
local Slack, and must be the same; and the script that draws them still draws."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[3] / "docs" / "alerts"
sys.path.insert(0, str(DOCS))

from render_examples import build_examples, draw  # noqa: E402


def test_the_documented_examples_are_what_safeload_sends(alert_env):
    committed = json.loads((DOCS / "examples.json").read_text())
    assert build_examples() == committed, "the messages changed: run docs/alerts/render_examples.py"
    for example in committed:
        assert (DOCS / f"{example['name']}.png").is_file(), example["name"]
        assert f"alerts/{example['name']}.png" in (DOCS.parent / "alerts.md").read_text(), example["name"]


def test_the_examples_are_drawn_by_chromium(tmp_path):
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian's chromium is not installed (apt-get install -y chromium)")
    examples = json.loads((DOCS / "examples.json").read_text())[:2]
    written = draw(examples, tmp_path, chromium)
    assert [p.name for p in written] == ["failure.png", "also.png"]
    assert all(p.read_bytes().startswith(b"\x89PNG") and p.stat().st_size > 5000 for p in written)
