"""What a source looks like: its columns, their types, and (for text formats) a typed scan.

Each reader streams: memory stays flat whatever the file size. Text formats (CSV,
JSON lines) carry no types, so they are scanned against the contract: every value is
checked as :func:`safeload.contracts.types.check_value` would, and the first few
offenders per column are kept with their line numbers. CSV is scanned by Arrow where it
can vouch for the result and by Python's csv module elsewhere, with the same findings
either way (:func:`_scan_csv_arrow`, decision 013). Typed formats (Parquet, a PostgreSQL
table) report their declared types; Parquet is read from its footer only.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeload.contracts.naming import normalise
from safeload.contracts.types import PgType, make_checker, parse_type
from safeload.errors import SourceError

if TYPE_CHECKING:
    from safeload.contracts.model import Contract

MAX_EXAMPLES = 5


@dataclass
class ColumnScan:
    """What a scan saw in one column."""

    nulls: int = 0
    invalid: int = 0
    examples: list[tuple[int, str, str]] = field(default_factory=list)  # (line, value, reason)


@dataclass
class SourceColumn:
    name: str
    type: PgType | None = None  # None: the format has no types (CSV, JSON lines)
    nullable: bool | None = None


@dataclass
class SourceSchema:
    """The shape of a source, and what a typed scan found in it."""

    location: str
    format: str
    columns: list[SourceColumn]
    rows: int | None = None
    scans: dict[str, ColumnScan] = field(default_factory=dict)
    ragged: list[tuple[int, int]] = field(default_factory=list)  # (line, field count)
    ragged_count: int = 0
    scan_engine: str | None = field(default=None, compare=False)  # which engine scanned a CSV
    scan_blocks: dict[str, int] = field(default_factory=dict, compare=False)  # Arrow engine: blocks per path
    #: the contract's value rules as checked on the source (:mod:`safeload.contracts.values`)
    rule_results: list[Any] = field(default_factory=list)
    #: what ``rule_results`` number rows by: ``line`` of a text file, ``row`` of Parquet or a query
    row_unit: str = "line"

    @property
    def column_names(self) -> list[str]:
        return [c.name for c in self.columns]


def detect_format(path: str) -> str:
    p = path.lower()
    if p.endswith((".csv", ".csv.gz")):
        return "csv"
    if p.endswith(".parquet"):
        return "parquet"
    if p.endswith((".jsonl", ".jsonl.gz", ".ndjson")):
        return "jsonl"
    raise SourceError(f"{path}: cannot tell the format from the name (it does not end in .csv, .csv.gz, .parquet, "
                      ".jsonl, .jsonl.gz or .ndjson); give the format: --format csv|parquet|jsonl on the command "
                      "line, format='csv' (or source_format= on an operator) in Python")


def open_text(path: str | Path) -> io.TextIOBase:
    """Open a (possibly gzipped) UTF-8 text file; a BOM is skipped."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: source file does not exist; check the path and that the upstream job delivered it")
    if p.is_dir():
        raise SourceError(f"{p}: is a directory, not a file; give the path of one source file")
    raw = gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")
    return io.TextIOWrapper(raw, encoding="utf-8-sig", newline="")


#: The longest CSV field read. Python's default (128 KiB) refuses fields PostgreSQL loads
#: (up to 1 GB); 256 MiB still stops an unclosed quote from reading a whole file into memory.
MAX_FIELD = 1 << 28
csv.field_size_limit(max(csv.field_size_limit(), MAX_FIELD))


class CsvReader:
    """Streams a CSV file as (line number, fields), with errors that name file and line.

    The first row is the header. Line numbers are physical lines of the file (a quoted
    field with a newline spans several), as an editor shows them.
    """

    def __init__(self, path: str | Path, delimiter: str = ","):
        self.path = str(path)
        self._fh = open_text(path)
        self._reader = csv.reader(self._fh, delimiter=delimiter, strict=True)
        self.header = self._read_header()

    def _read_header(self) -> list[str]:
        try:
            header = next(self._reader)
        except StopIteration:
            raise SourceError(f"{self.path}: the file is empty; expected a header line and rows") from None
        except (UnicodeDecodeError, csv.Error, EOFError, OSError, gzip.BadGzipFile, zlib.error) as e:
            raise self._error(e) from None
        if not header or all(not h.strip() for h in header):
            raise SourceError(f"{self.path} line 1: the header is blank; the first line must name the columns")
        return header

    def _error(self, e: Exception) -> SourceError:
        # csv.Error comes after the reader counted the offending line; a decoding error
        # comes while reading the next one
        line = self._reader.line_num + (0 if isinstance(e, csv.Error) else 1)
        if isinstance(e, UnicodeDecodeError):
            return SourceError(f"{self.path} near line {line}: not valid UTF-8 ({e.reason}: byte "
                               f"0x{e.object[e.start]:02x}); re-export the file as UTF-8")
        if isinstance(e, (EOFError, gzip.BadGzipFile, zlib.error)):
            return SourceError(f"{self.path} near line {line}: the compressed file is truncated or corrupt ({e}); "
                               "deliver the complete file again")
        return SourceError(f"{self.path} line {line}: malformed CSV ({e}); fix the quoting on that line")

    def __iter__(self) -> Iterator[tuple[int, list[str]]]:
        it = iter(self._reader)
        while True:
            try:
                row = next(it)
            except StopIteration:
                return
            except (UnicodeDecodeError, csv.Error, EOFError, OSError, gzip.BadGzipFile, zlib.error) as e:
                raise self._error(e) from None
            if not row:  # a blank line
                continue
            yield self._reader.line_num, row

    def close(self) -> None:
        self._fh.close()

    def __enter__(self) -> CsvReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _scan_values(schema: SourceSchema, contract: Contract | None, rows: Iterator[tuple[int, dict[str, Any]]]) -> None:
    """Typed scan of JSON lines: count nulls and values that do not fit; the value rules
    are checked on batches of the same records."""
    types = {normalise(c.name): c.type for c in contract.columns} if contract else {}
    checkers: dict[str, Any] = {}
    batch: list[tuple[int, dict[str, Any]]] = []
    values = _RuleBatches(contract)
    n = 0
    for line, record in rows:
        n += 1
        if values.wanted:
            batch.append((line, record))
            if len(batch) >= BATCH_ROWS:
                values.feed_records(schema, batch)
                batch = []
        for name in schema.column_names:
            scan = schema.scans.setdefault(name, ColumnScan())
            value = record.get(name)
            if value is None or value == "":
                scan.nulls += 1
                continue
            t = types.get(normalise(name))
            if t is None:
                continue
            if name not in checkers:
                checkers[name] = make_checker(t)
            text = _as_text(value)
            reason = checkers[name](text)
            if reason is not None:
                scan.invalid += 1
                if len(scan.examples) < MAX_EXAMPLES:
                    scan.examples.append((line, text[:80], reason))
    values.feed_records(schema, batch)
    schema.rows = n
    schema.rule_results = values.finish(n)


#: rows per batch handed to the value rules by the row-by-row readers
BATCH_ROWS = 65536


class _RuleBatches:
    """Hands rows read one by one to the value rules in Arrow batches (the rules are
    evaluated column-wise, :mod:`safeload.contracts.values`)."""

    def __init__(self, contract: Contract | None):
        self.contract = contract
        self.check: Any = None
        self.wanted = bool(contract is not None and contract.rules)

    def _start(self, names: list[str], text: bool = True) -> Any:
        if self.check is None and self.wanted:
            from safeload.contracts.values import value_check

            self.check = value_check(self.contract, names, text=text)
        return self.check

    def feed_rows(self, names: list[str], rows: list[tuple[int, list[str]]]) -> None:
        check = self._start(names)
        if check is None or not rows:
            return
        import pyarrow as pa

        index = {n: i for i, n in enumerate(names)}
        cols = {n: pa.array([r[index[n]] for _, r in rows], pa.string()) for n in check.needed}
        check.feed(pa.table(cols) if cols else pa.table({"_": pa.nulls(len(rows))}), [ln for ln, _ in rows])

    def feed_records(self, schema: SourceSchema, records: list[tuple[int, dict[str, Any]]]) -> None:
        check = self._start(schema.column_names)
        if check is None or not records:
            return
        import pyarrow as pa

        cols = {n: pa.array([None if (v := r.get(n)) is None else _as_text(v) for _, r in records], pa.string())
                for n in check.needed}
        check.feed(pa.table(cols) if cols else pa.table({"_": pa.nulls(len(records))}),
                   [ln for ln, _ in records])

    def feed_table(self, names: list[str], table: Any, lines: Any) -> None:
        check = self._start(names)
        if check is not None:
            check.feed(table, lines)

    def finish(self, rows: int) -> list[Any]:
        return [] if self.check is None else self.check.finish(rows)

    def close(self) -> None:
        if self.check is not None:
            self.check.close()


class _CsvScan:
    """The state of a typed CSV scan: per-column counts and examples, ragged rows, rows.

    Both engines feed it: the Python one row by row (:meth:`feed`), the Arrow one a block
    at a time (:func:`_scan_csv_arrow`), handing it the rows it cannot clear in bulk.
    """

    def __init__(self, schema: SourceSchema, contract: Contract | None):
        from safeload.contracts.types import fast_filter

        self.schema = schema
        header = schema.column_names
        self.width = len(header)
        types = {normalise(c.name): c.type for c in contract.columns} if contract else {}
        self.scans = [ColumnScan() for _ in header]
        self.checks = [(i, make_checker(types[normalise(h)]), self.scans[i]) for i, h in enumerate(header)
                       if normalise(h) in types]
        self.filters = [fast_filter(types[normalise(h)]) for h in header if normalise(h) in types]
        self.unchecked = [(i, self.scans[i]) for i, h in enumerate(header) if normalise(h) not in types]
        self.rows = 0
        self.values = _RuleBatches(contract)
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


def _scan_csv(schema: SourceSchema, contract: Contract | None, reader: CsvReader) -> None:
    """Typed scan of CSV rows in Python, by column position: the reference engine."""
    scan = _CsvScan(schema, contract)
    try:
        scan.feed(iter(reader))
        scan.finish("python")
    finally:
        scan.values.close()


def _line_numbers(first: int, n: int) -> Any:
    import numpy as np
    import pyarrow as pa

    return pa.array(np.arange(first, first + n, dtype=np.int64))


#: bytes read per block by the Arrow engine (memory stays a few times this, whatever the file)
ARROW_BLOCK_BYTES = 8 << 20
#: a block that must grow past this to end outside a quoted field sends the scan to Python
ARROW_MAX_BLOCK_BYTES = 64 << 20


class _UsePython(Exception):
    """The Arrow engine cannot vouch for this file: scan it again with the Python engine."""


def _line_breaks(block: bytes) -> int:
    # what Python's newline='' reading counts as a line end: \n, \r\n and a lone \r
    if b"\r" not in block:  # a byte search, far cheaper than counting a two-byte pattern
        return block.count(b"\n")
    return block.count(b"\n") + block.count(b"\r") - block.count(b"\r\n")


def _lone_cr(block: bytes) -> bool:
    return b"\r" in block and block.count(b"\r") != block.count(b"\r\n")


def arrow_clear(col: Any, flt: tuple[str, Any] | None) -> Any:
    """Run a :func:`~safeload.contracts.types.fast_filter` test over an Arrow string column.

    Returns a boolean array (true: the value certainly fits), ``True`` (all fit) or
    ``None`` (no test: every value goes to the checker).
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    if flt is None:
        return None
    kind, arg = flt
    if kind == "all":
        return True
    if kind == "no_nul":
        return pc.invert(pc.match_substring(col, "\x00"))
    if kind == "max_length":
        return pc.less_equal(pc.utf8_length(col), arg)
    if kind == "in":
        return pc.is_in(col, value_set=pa.array(arg, pa.string()))
    if kind == "digits":  # ascii_is_decimal is false for "" (counted as null anyway)
        return pc.and_(pc.ascii_is_decimal(col), pc.less_equal(pc.binary_length(col), arg))
    if kind == "regex":
        return pc.match_substring_regex(col, arg)
    raise ValueError(f"unknown filter {kind!r}")


def _scan_csv_arrow(schema: SourceSchema, contract: Contract | None, path: str | Path) -> bool:
    """Typed scan with Arrow: the same findings as :func:`_scan_csv`, several times faster.

    The file is read in blocks cut at line ends. A block Arrow can parse exactly as
    Python's csv module would (no quote character, NUL or lone carriage return; every
    line one row of the header's width) is split into string columns by Arrow, and each
    column is cleared in bulk by a vectorised test that only accepts values the exact
    checker accepts (:func:`safeload.contracts.types.fast_filter`); the values left
    over go through the exact checker one by one, with their line numbers. Any other
    block (quoted fields, ragged or blank lines) is read by Python's csv module, row by
    row, as the Python engine would. When the file itself is in doubt (a header Arrow
    cannot place, bytes that are not UTF-8, broken quoting, a corrupt gzip stream), the
    function resets the schema and returns ``False``: the caller scans with Python,
    whose error messages name the line.

    Decision 013 explains the design; tests/unit/contracts/test_scan_engines.py holds
    both engines to the same findings on faulty files.
    """
    try:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pacsv
    except ImportError:  # pragma: no cover - pyarrow is a dependency, but the scan must not need it
        return False

    state = _CsvScan(schema, contract)
    names = [f"c{i}" for i in range(state.width)]
    read_options = pacsv.ReadOptions(column_names=names)
    convert_options = pacsv.ConvertOptions(column_types={n: pa.string() for n in names}, null_values=[],
                                           strings_can_be_null=False, quoted_strings_can_be_null=False)
    masks = {i: flt for (i, _, _), flt in zip(state.checks, state.filters)}

    def arrow_block(block: bytes, first_line: int) -> bool:
        if b'"' in block or b"\x00" in block or _lone_cr(block):
            return False
        try:
            table = pacsv.read_csv(io.BytesIO(block), read_options=read_options, convert_options=convert_options)
        except pa.ArrowInvalid:  # ragged rows, bytes that are not UTF-8: Python says where
            return False
        lines = _line_breaks(block) + (0 if block.endswith((b"\n", b"\r")) else 1)
        if table.num_rows != lines:  # blank lines: line numbers would shift
            return False
        for i, check, scan in state.checks:
            col = table.column(i)
            empty = pc.equal(col, "")
            scan.nulls += pc.sum(empty).as_py() or 0
            ok = arrow_clear(col, masks[i])
            if ok is True:
                continue
            todo = pc.invert(empty) if ok is None else pc.and_not(pc.invert(empty), ok)
            idx = pc.indices_nonzero(todo)
            if len(idx) == 0:
                continue
            for k, v in zip(idx.to_pylist(), pc.take(col, idx).to_pylist()):
                if (reason := check(v)) is not None:
                    scan.invalid += 1
                    if len(scan.examples) < MAX_EXAMPLES:
                        scan.examples.append((first_line + k, v[:80], reason))
        for i, scan in state.unchecked:
            scan.nulls += pc.sum(pc.equal(table.column(i), "")).as_py() or 0
        if state.values.wanted:
            state.flush()
            state.values.feed_table(schema.column_names, table.rename_columns(schema.column_names),
                                    _line_numbers(first_line, table.num_rows))
        state.rows += table.num_rows
        return True

    def python_block(block: bytes, first_line: int) -> None:
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            raise _UsePython from None
        reader = csv.reader(io.StringIO(text, newline=""), strict=True)

        def rows() -> Iterator[tuple[int, list[str]]]:
            while True:
                try:
                    row = next(reader)
                except StopIteration:
                    return
                except csv.Error:  # broken quoting, or a block cut inside a quoted field
                    raise _UsePython from None
                if row:
                    yield first_line - 1 + reader.line_num, row

        state.feed(rows())

    p = Path(path)
    try:
        with (gzip.open(p, "rb") if p.suffix == ".gz" else open(p, "rb")) as raw:
            first = raw.readline()
            if first.startswith(b"\xef\xbb\xbf"):
                first = first[3:]
            if b'"' in first or b"\x00" in first or _lone_cr(first):
                raise _UsePython
            if next(csv.reader([first.decode("utf-8").rstrip("\r\n")]), None) != schema.column_names:
                raise _UsePython
            line, carry, eof = 2, b"", False
            blocks = {"arrow": 0, "python": 0}
            while not eof:
                chunk = raw.read(ARROW_BLOCK_BYTES)
                eof = not chunk
                buf = carry + chunk
                if eof:
                    block, carry = buf, b""
                else:
                    cut = buf.rfind(b"\n") + 1
                    # an odd number of quotes before the cut: it may fall inside a quoted field
                    if cut == 0 or (b'"' in buf and buf.count(b'"', 0, cut) % 2):
                        if len(buf) > ARROW_MAX_BLOCK_BYTES:
                            raise _UsePython
                        carry = buf
                        continue
                    block, carry = buf[:cut], buf[cut:]
                if not block:
                    continue
                if arrow_block(block, line):
                    blocks["arrow"] += 1
                else:
                    python_block(block, line)
                    blocks["python"] += 1
                line += _line_breaks(block)
    except (_UsePython, UnicodeDecodeError, EOFError, OSError, zlib.error):
        schema.ragged.clear()
        schema.ragged_count = 0
        state.values.close()
        return False
    except BaseException:
        state.values.close()
        raise
    state.finish("arrow")
    schema.scan_blocks = blocks
    return True


def _as_text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (dict, list)):
        return json.dumps(value)
    return str(value)


def introspect_csv(path: str | Path, contract: Contract | None = None, scan: bool = True,
                   engine: str = "auto") -> SourceSchema:
    """Header and (with ``scan``) a streamed typed scan of a CSV or CSV.gz file.

    :param engine: ``"auto"`` (Arrow, falling back to Python where Arrow cannot vouch for
        the file), ``"arrow"`` (the same), or ``"python"`` (row by row, the reference).
        Both give the same findings; see :func:`_scan_csv_arrow`.
    """
    if engine not in ("auto", "arrow", "python"):
        raise ValueError(f"engine {engine!r}: use 'auto', 'arrow' or 'python'")
    with CsvReader(path) as reader:
        header = reader.header
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise SourceError(f"{path} line 1: the header names column {dupes[0]!r} more than once; "
                              "column names must be unique")
        schema = SourceSchema(str(path), "csv", [SourceColumn(h) for h in header])
        if not scan:
            return schema
        if engine == "python" or not _scan_csv_arrow(schema, contract, path):
            _scan_csv(schema, contract, reader)
    if schema.rows == 0 and schema.ragged_count == 0:
        raise SourceError(f"{path}: has a header but no rows; an empty delivery is refused "
                          "(allow_empty=True on the load accepts it on purpose)")
    return schema


def introspect_jsonl(path: str | Path, contract: Contract | None = None) -> SourceSchema:
    """Columns (union of keys, in first-seen order) and a typed scan of a JSON lines file."""
    names: dict[str, None] = {}
    fh = open_text(path)
    schema = SourceSchema(str(path), "jsonl", [])

    def records() -> Iterator[tuple[int, dict[str, Any]]]:
        for line_no, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as e:
                raise SourceError(f"{path} line {line_no}, column {e.colno}: invalid JSON ({e.msg}); "
                                  "each line must be one JSON object") from None
            if not isinstance(obj, dict):
                raise SourceError(f"{path} line {line_no}: a JSON {type(obj).__name__}, expected an object")
            for k in obj:
                if k not in names:
                    names[k] = None
                    schema.columns.append(SourceColumn(k))
            yield line_no, obj

    try:
        _scan_values(schema, contract, records())
    except UnicodeDecodeError as e:
        raise SourceError(f"{path}: not valid UTF-8 ({e.reason}); re-export the file as UTF-8") from None
    except (EOFError, gzip.BadGzipFile, zlib.error) as e:
        raise SourceError(f"{path}: the compressed file is truncated or corrupt ({e}); deliver the complete file "
                          "again") from None
    finally:
        fh.close()
    if not schema.columns:
        raise SourceError(f"{path}: the file is empty; expected one JSON object per line")
    return schema


_ARROW_TO_PG = {
    "int8": "smallint", "int16": "smallint", "int32": "integer", "int64": "bigint",
    "uint8": "smallint", "uint16": "integer", "uint32": "bigint",
    "float": "real", "float16": "real", "halffloat": "real", "double": "double precision",
    "string": "text", "large_string": "text", "utf8": "text", "large_utf8": "text",
    "bool": "boolean", "date32[day]": "date", "date64[ms]": "date",
}


def arrow_type_to_pg(arrow_type: Any) -> PgType:
    """Map a pyarrow type to the PostgreSQL type it loads into."""
    import pyarrow as pa

    if pa.types.is_decimal(arrow_type):
        return PgType("numeric", arrow_type.precision, arrow_type.scale)
    if pa.types.is_timestamp(arrow_type):
        return PgType("timestamptz" if arrow_type.tz else "timestamp")
    if pa.types.is_dictionary(arrow_type):
        return arrow_type_to_pg(arrow_type.value_type)
    name = str(arrow_type)
    if name in _ARROW_TO_PG:
        return parse_type(_ARROW_TO_PG[name])
    raise SourceError(f"Parquet type {name} has no PostgreSQL mapping in safeload; cast it upstream")


def introspect_parquet(path: str | Path, contract: Contract | None = None) -> SourceSchema:
    """Column names, types and nullability from the Parquet footer; with a contract that
    has value rules, the columns they need are read, a row group's batches at a time."""
    p = Path(path)
    if not p.exists():
        raise SourceError(f"{p}: source file does not exist; check the path")
    import pyarrow.parquet as pq

    try:
        pf = pq.ParquetFile(p)
    except Exception as e:  # pyarrow raises ArrowInvalid, OSError, ...
        raise SourceError(f"{p}: not a readable Parquet file ({e}); deliver the complete file again") from None
    arrow_schema = pf.schema_arrow
    cols = [SourceColumn(f.name, arrow_type_to_pg(f.type), f.nullable) for f in arrow_schema]
    schema = SourceSchema(str(p), "parquet", cols, rows=pf.metadata.num_rows)
    if pf.metadata.num_rows == 0:
        raise SourceError(f"{p}: has a schema but no rows; an empty delivery is refused")
    # null counts come from the row-group statistics, so no data page is read
    for i, c in enumerate(cols):
        nulls = 0
        for rg in range(pf.metadata.num_row_groups):
            stats = pf.metadata.row_group(rg).column(i).statistics
            if stats is not None and stats.has_null_count:
                nulls += stats.null_count
        schema.scans[c.name] = ColumnScan(nulls=nulls)
    schema.row_unit = "row"
    values = _RuleBatches(contract)
    check = values._start(schema.column_names, text=False) if values.wanted else None
    if check is not None and check.active:
        row = 1
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=sorted(check.needed) or None):
                check.feed(batch, _line_numbers(row, batch.num_rows))
                row += batch.num_rows
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            values.close()
            raise SourceError(f"{p}: a data page cannot be read ({e}); deliver the complete file again") from None
    schema.rule_results = values.finish(pf.metadata.num_rows)
    return schema


def introspect_postgres(conn: Any, relation: str, schema_name: str = "public",
                        contract: Contract | None = None) -> SourceSchema:
    """Columns, types and nullability of a PostgreSQL table or view (from the catalogue).

    With a contract, nullable source columns that the contract says are NOT NULL get
    their nulls counted (one scan for all of them).

    :param conn: an open psycopg connection
    """
    from psycopg import sql

    rows = conn.execute(
        """
        select a.attname, format_type(a.atttypid, a.atttypmod), not a.attnotnull
        from pg_attribute a
        join pg_class c on c.oid = a.attrelid
        join pg_namespace n on n.oid = c.relnamespace
        where n.nspname = %s and c.relname = %s and a.attnum > 0 and not a.attisdropped
        order by a.attnum
        """,
        (schema_name, relation),
    ).fetchall()
    if not rows:
        raise SourceError(f"table {schema_name}.{relation} does not exist or has no columns")
    schema = SourceSchema(f"{schema_name}.{relation}", "postgres",
                          [SourceColumn(n, _pg_type_or_text(t), nullable) for n, t, nullable in rows])
    _count_nulls(conn, schema, sql.Identifier(schema_name, relation), contract)
    _check_rules(conn, schema, sql.Identifier(schema_name, relation), contract)
    return schema


def _check_rules(conn: Any, schema: SourceSchema, relation: Any, contract: Contract | None) -> None:
    """The contract's value rules, counted by the server in one statement."""
    from safeload.contracts.values_sql import check_rules_sql

    schema.row_unit = "row"
    rows, schema.rule_results = check_rules_sql(conn, relation, schema.column_names, contract)
    if rows is not None:
        schema.rows = rows


def _count_nulls(conn: Any, schema: SourceSchema, relation: Any, contract: Contract | None) -> None:
    """Count nulls in nullable source columns that the contract declares NOT NULL."""
    from psycopg import sql

    if contract is None:
        return
    not_null = {normalise(c.name) for c in contract.columns if not c.nullable}
    cols = [c.name for c in schema.columns if c.nullable is not False and normalise(c.name) in not_null]
    if not cols:
        return
    counts = conn.execute(sql.SQL("select {} from {}").format(
        sql.SQL(", ").join(sql.SQL("count(*) - count({})").format(sql.Identifier(c)) for c in cols), relation)
    ).fetchone()
    for c, n in zip(cols, counts):
        schema.scans[c] = ColumnScan(nulls=n)


def _pg_type_or_text(text: str) -> PgType:
    try:
        return parse_type(text)
    except ValueError:
        return PgType("text")


def introspect_query(conn: Any, query: str, contract: Contract | None = None) -> SourceSchema:
    """Columns and types of a SQL query's result (nullability unknown: nulls are counted)."""
    from psycopg import sql

    cur = conn.execute(sql.SQL("select * from ({}) as q limit 0").format(sql.SQL(query)))
    cols = []
    for d in cur.description:
        type_text = conn.execute("select format_type(%s, %s)", (d.type_code, _typmod(d))).fetchone()[0]
        cols.append(SourceColumn(d.name, _pg_type_or_text(type_text)))
    schema = SourceSchema("query", "postgres", cols)
    _count_nulls(conn, schema, sql.SQL("({}) as q").format(sql.SQL(query)), contract)
    _check_rules(conn, schema, sql.SQL("({}) as q").format(sql.SQL(query)), contract)
    return schema


def _typmod(d: Any) -> int:
    # psycopg exposes precision/scale/internal_size; format_type needs the raw typmod
    if d.precision is not None and d.scale is not None:
        return ((d.precision << 16) | d.scale) + 4
    if d.type_code in (1043, 1042) and d.display_size:  # char(n)/varchar(n): n is display_size, not internal_size
        return d.display_size + 4
    return -1


def introspect(source: str, contract: Contract | None = None, fmt: str | None = None,
               conn: Any = None) -> SourceSchema:
    """Introspect a file path, or ``postgresql://...``-style sources through ``conn``."""
    fmt = fmt or detect_format(source)
    if fmt == "csv":
        return introspect_csv(source, contract)
    if fmt == "parquet":
        return introspect_parquet(source, contract)
    if fmt == "jsonl":
        return introspect_jsonl(source, contract)
    raise SourceError(f"format {fmt!r} is not supported; use csv, parquet or jsonl")
