"""Rows a stage rejects: kept with their line, raw text and reason (:class:`Quarantine`),
weighed against the load's thresholds, and saved to ``safeload.quarantine``."""

from __future__ import annotations

import csv
import tempfile
from collections.abc import Iterator

import psycopg

from safeload.errors import LoadRefusedError
from safeload.loads import sql as q
from safeload.loads.spec import LoadSpec


class Quarantine:
    """Rejected rows, spooled to a temporary file so memory stays flat however many there are."""

    MAX_EXAMPLES = 5

    def __init__(self) -> None:
        self._file = tempfile.TemporaryFile("w+", encoding="utf-8")
        self._writer = csv.writer(self._file)
        self.count = 0
        self.examples: list[tuple[int, str]] = []
        self.saved = False

    def add(self, line: int, raw: str, reason: str) -> None:
        self.count += 1
        if len(self.examples) < self.MAX_EXAMPLES:
            self.examples.append((line, reason))
        self._writer.writerow((line, raw.replace("\x00", "\\0"), reason))

    def rows(self) -> Iterator[tuple[int, str, str]]:
        self._file.flush()
        self._file.seek(0)
        for line, raw, reason in csv.reader(self._file):
            yield int(line), raw, reason

    def close(self) -> None:
        self._file.close()


def check_thresholds(load: LoadSpec, source: str, rows_source: int, bad: int, quarantine: Quarantine) -> None:
    """Refuse the load when the quarantined rows are over ``max_bad_rows`` or
    ``max_bad_fraction``, or are every row (without ``allow_empty``)."""
    if not bad:
        return
    over = []
    if load.max_bad_rows is not None and bad > load.max_bad_rows:
        over.append(f"more than max_bad_rows={load.max_bad_rows}")
    if load.max_bad_fraction is not None and rows_source and bad / rows_source > load.max_bad_fraction:
        over.append(f"{bad / rows_source:.2%} of rows, more than max_bad_fraction={load.max_bad_fraction:.2%}")
    if bad == rows_source and not load.allow_empty:
        # no threshold may turn "every row is bad" into an empty partition: that is what
        # allow_empty is for (found by tests/reliability/test_fuzz_csv.py)
        over.append("every row, leaving nothing to publish (allow_empty=True accepts an empty partition)")
    if over:
        examples = "; ".join(f"line {ln}: {reason}" for ln, reason in quarantine.examples)
        raise LoadRefusedError(
            f"{source}: {bad} of {rows_source} row(s) are malformed ({' and '.join(over)}), so partition "
            f"{load.partition_value} was not replaced. First: {examples}. All are in safeload.quarantine "
            f"(run_key {load.run_key!r}); fix the source, or raise the threshold if they are expected"
        )


def save_quarantine(conn: psycopg.Connection, load: LoadSpec, info: q.TargetInfo, source: str,
                    quarantine: Quarantine) -> None:
    """COPY the quarantined rows into ``safeload.quarantine`` (once)."""
    if not quarantine.count or quarantine.saved:
        return
    with conn.cursor().copy(
        "copy safeload.quarantine (target, partition_value, run_key, source, line, raw, reason) from stdin"
    ) as copy:
        for line, raw, reason in quarantine.rows():
            copy.write_row((info.name, load.partition_value, load.run_key, source, line, raw, reason))
    quarantine.saved = True
