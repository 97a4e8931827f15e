"""Fixtures of the real-stack tests: the stack of docker-compose.yaml as local processes.

``make test`` runs a subset of the story on each executor; ``make e2e``
(``SAFELOAD_E2E=full``) runs all of it on both.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "include"))  # the sample-data generators, as a user runs them


def full() -> bool:
    return os.environ.get("SAFELOAD_E2E", "").lower() == "full"


@pytest.fixture(scope="session")
def e2e_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")
