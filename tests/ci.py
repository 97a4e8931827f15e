"""Whether the tests run in CI (``CI`` set to 1, true or yes, as .ci/run's machines set it):
there, a part that cannot run here (no browser, no Azurite, no compose parser) fails
instead of being skipped, so nothing is left out unseen."""

from __future__ import annotations

import os


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")
