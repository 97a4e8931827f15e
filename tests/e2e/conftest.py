"""Fixtures of the real-stack tests: the stack of docker-compose.yaml as local processes.

``make test`` runs a subset of the story on each executor; ``make e2e``
(``SAFELOAD_E2E=full``) runs all of it on both.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "include"))  # the sample-data generators, as a user runs them


@pytest.fixture(scope="session")
def e2e_root(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("e2e")
