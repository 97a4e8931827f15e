"""The state of a typed scan of CSV rows, shared by both CSV engines (decision 013).

:class:`CsvScanState` holds per-column null and invalid counts with their first
examples, the ragged rows and the row count. The Python engine feeds it rows one by one
(:meth:`CsvScanState.feed`); the Arrow engine (:mod:`safeload.contracts.csv_arrow`)
hands it whole blocks as Arrow tables (:meth:`CsvScanState.check_table`), where each
column is cleared in bulk by a vectorised test and only the values left over go through
the exact checker. Either way the value rules of the contract see the same rows, in
batches (:class:`RuleBatches`), so the findings do not depend on the engine.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from safeload.contracts.naming import normalise
from safeload.contracts.source import MAX_EXAMPLES, ColumnScan, SourceSchema
from safeload.contracts.types import fast_filter, make_checker

if TYPE_CHECKING:
    from safeload.contracts.model import Contract

#: rows per batch handed to the value rules by the row-by-row readers
BATCH_ROWS = 65536

#: The longest CSV field read. Python's default (128 KiB) refuses fields PostgreSQL loads
#: (up to 1 GB); 256 MiB still stops an unclosed quote from reading a whole file into memory.
MAX_FIELD = 1 << 28
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))


def line_numbers(first: int, n: int) -> Any:
    """An int64 Arrow array ``first, first + 1, ...``: the lines of ``n`` rows, one per line."""
    import numpy as np
    import pyarrow as pa

    return pa.array(np.arange(first, first + n, dtype=np.int64))


def as_text(value: Any) -> str:
    """A JSON value as the text a CSV field would hold."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


class RuleBatches:
    """Hands rows to the value rules in Arrow batches (the rules are evaluated column-wise,
    :mod:`safeload.contracts.values`)."""

    def __init__(self, contract: Contract | None):
        self.contract = contract
        self.check: Any = None
        self.wanted = bool(contract is not None and contract.rules)

    def start(self, names: list[str], text: bool = True) -> Any:
        """The :class:`~safeload.contracts.values.ValueCheck` for a source with these columns."""
        if self.check is None and self.wanted:
            from safeload.contracts.values import value_check

            self.check = value_check(self.contract, names, text=text)
        return self.check

    def feed_rows(self, names: list[str], rows: list[tuple[int, list[str]]]) -> None:
        check = self.start(names)
        if check is None or not rows:
            return
        import pyarrow as pa

        index = {n: i for i, n in enumerate(names)}
        cols = {n: pa.array([r[index[n]] for _, r in rows], pa.string()) for n in check.needed}
        check.feed(pa.table(cols) if cols else pa.table({"_": pa.nulls(len(rows))}), [ln for ln, _ in rows])

    def feed_records(self, schema: SourceSchema, records: list[tuple[int, dict[str, Any]]]) -> None:
        check = self.start(schema.column_names)
        if check is None or not records:
            return
        import pyarrow as pa

        cols = {n: pa.array([None if (v := r.get(n)) is None else as_text(v) for _, r in records], pa.string())
                for n in check.needed}
        check.feed(pa.table(cols) if cols else pa.table({"_": pa.nulls(len(records))}),
                   [ln for ln, _ in records])

    def feed_table(self, names: list[str], table: Any, lines: Any, columns: dict[str, Any] | None = None) -> None:
        check = self.start(names)
        if check is not None:
            check.feed(table, lines, columns)

    def finish(self, rows: int) -> list[Any]:
        return [] if self.check is None else self.check.finish(rows)

    def close(self) -> None:
        if self.check is not None:
            self.check.close()


class CsvScanState:
    """The state of a typed CSV scan: per-column counts and examples, ragged rows, rows.

    Both engines feed it: the Python one row by row (:meth:`feed`), the Arrow one a block
    at a time (:meth:`check_table`).
    """

    def __init__(self, schema: SourceSchema, contract: Contract | None):
        self.schema = schema
        header = schema.column_names
        self.width = len(header)
        types = {normalise(c.name): c.type for c in contract.columns} if contract else {}
        self.scans = [ColumnScan() for _ in header]
        self.checks = [(i, make_checker(types[normalise(h)]), self.scans[i]) for i, h in enumerate(header)
                       if normalise(h) in types]
        self.filters = {i: fast_filter(types[normalise(header[i])]) for i, _, _ in self.checks}
        self.unchecked = [(i, self.scans[i]) for i, h in enumerate(header) if normalise(h) not in types]
        self.rows = 0
        self.values = RuleBatches(contract)
        self._pending: list[tuple[int, list[str]]] = []

    def feed(self, rows: Iterator[tuple[int, list[str]]]) -> None:
        """Check rows one by one: the hot loop of the Python engine."""
        schema, width, checks, unchecked = self.schema, self.width, self.checks, self.unchecked
        pending, wanted = self._pending, self.values.wanted
        n = 0
        for line, row in rows:
            if len(row) != width:
                schema.ragged_count += 1
                if len(schema.ragged) < MAX_EXAMPLES:
                    schema.ragged.append((line, len(row)))
                continue
            n += 1
            if wanted:
                pending.append((line, row))
                if len(pending) >= BATCH_ROWS:
                    self.flush()
            for i, check, scan in checks:
                v = row[i]
                if not v:
                    scan.nulls += 1
                elif (reason := check(v)) is not None:
                    scan.invalid += 1
                    if len(scan.examples) < MAX_EXAMPLES:
                        scan.examples.append((line, v[:80], reason))
            for i, scan in unchecked:
                if not row[i]:
                    scan.nulls += 1
        self.rows += n

    def check_table(self, table: Any, lines: Any, nul_free: bool = False) -> None:
        """Check a block of rows split by Arrow: each column is cleared in bulk by its
        :func:`~safeload.contracts.types.fast_filter` test, the values left go, in row
        order, to the exact checker; then the value rules see the block.

        :param table: string columns in the header's order, no nulls, no ragged rows
        :param lines: the line of the first row when each row is one line, else an int64
            Arrow array with the line of every row
        :param nul_free: no value holds a NUL (the text test has nothing to do)
        """
        import pyarrow as pa
        import pyarrow.compute as pc

        from safeload.contracts.values import BlockColumn
        from safeload.contracts.vector_filters import arrow_clear

        n = table.num_rows
        names = self.schema.column_names
        lines = line_numbers(lines, n) if isinstance(lines, int) else lines
        columns: dict[str, Any] = {}
        for i, check, scan in self.checks:
            col = table.column(i)
            col = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
            empty = pc.equal(col, "")
            nulls = pc.sum(empty).as_py() or 0
            scan.nulls += nulls
            flt, facts = self.filters[i], {}
            ok = True if nul_free and flt == ("no_nul", None) else arrow_clear(col, flt, facts)
            canonical = ok is True
            if not canonical:
                if ok is None:
                    todo = pc.invert(empty)
                else:
                    todo = pc.and_not(pc.invert(empty), ok) if nulls else pc.invert(ok)
                idx = pc.indices_nonzero(todo)
                canonical = ok is not None and len(idx) == 0
                for line, v in zip(pc.take(lines, idx).to_pylist(), pc.take(col, idx).to_pylist()):
                    if (reason := check(v)) is not None:
                        scan.invalid += 1
                        if len(scan.examples) < MAX_EXAMPLES:
                            scan.examples.append((line, v[:80], reason))
            columns[names[i]] = BlockColumn(col, True, null=empty, nulls=nulls, canonical=canonical,
                                            spelling=facts if canonical else None)
        for i, scan in self.unchecked:
            scan.nulls += pc.sum(pc.equal(table.column(i), "")).as_py() or 0
        if self.values.wanted:
            self.flush()
            self.values.feed_table(names, table.rename_columns(names), lines, columns)
        self.rows += n

    def flush(self) -> None:
        """Hand the rows read one by one to the value rules."""
        self.values.feed_rows(self.schema.column_names, self._pending)
        self._pending.clear()

    def finish(self, engine: str) -> None:
        self.flush()
        self.schema.rows = self.rows
        self.schema.scans = dict(zip(self.schema.column_names, self.scans))
        self.schema.scan_engine = engine
        self.schema.rule_results = self.values.finish(self.rows)
