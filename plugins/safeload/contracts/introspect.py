"""What a source looks like: its columns, their types, and (for text formats) a typed scan.

Each reader streams: memory stays flat whatever the file size. Text formats (CSV,
JSON lines) carry no types, so they are scanned against the contract: every value is
checked as :func:`safeload.contracts.types.check_value` would, and the first few
offenders per column are kept with their line numbers. CSV is scanned by Arrow where it
can vouch for the result and by Python's csv module elsewhere, with the same findings
either way (:mod:`safeload.contracts.csv_arrow`, decisions 013 and 027). Typed formats
(Parquet, a PostgreSQL table) report their declared types; Parquet is read from its
footer, and its data pages only for the columns a value rule needs.
"""

from __future__ import annotations

import csv
import gzip
import io
import json
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from safeload.contracts.csv_scan import BATCH_ROWS, MAX_FIELD, CsvScanState, RuleBatches, as_text, line_numbers
from safeload.contracts.naming import normalise
from safeload.contracts.source import MAX_EXAMPLES, ColumnScan, SourceColumn, SourceSchema
from safeload.contracts.types import TEXT_CARRIES, PgType, check_value, fast_filter, make_checker, parse_type
from safeload.errors import SourceError
from safeload.storage import open_bytes, open_random
from safeload.urls import is_url

if TYPE_CHECKING:
    from safeload.contracts.model import Contract

__all__ = ["MAX_EXAMPLES", "MAX_FIELD", "ColumnScan", "CsvReader", "SourceColumn", "SourceSchema", "detect_format",
           "introspect", "introspect_csv", "introspect_jsonl", "introspect_parquet", "introspect_postgres",
           "introspect_query", "normalise", "open_text"]


def detect_format(path: str) -> str:
    if not is_url(path) and Path(path).is_dir():  # a landing folder given for its file
        raise SourceError(f"{path}: is a directory, not a file; give the path of one source file")
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
    """Open a (possibly gzipped) UTF-8 text file, local or stored (:mod:`safeload.storage`); a BOM is skipped."""
    return io.TextIOWrapper(open_bytes(path), encoding="utf-8-sig", newline="")


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
    values = RuleBatches(contract)
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
            text = as_text(value)
            reason = checkers[name](text)
            if reason is not None:
                scan.invalid += 1
                if len(scan.examples) < MAX_EXAMPLES:
                    scan.examples.append((line, text[:80], reason))
    values.feed_records(schema, batch)
    schema.rows = n
    schema.rule_results = values.finish(n)


def _scan_csv(schema: SourceSchema, contract: Contract | None, reader: CsvReader) -> None:
    """Typed scan of CSV rows in Python, by column position: the reference engine."""
    scan = CsvScanState(schema, contract)
    try:
        scan.feed(iter(reader))
        scan.finish("python")
    finally:
        scan.values.close()


def introspect_csv(path: str | Path, contract: Contract | None = None, scan: bool = True,
                   engine: str = "auto") -> SourceSchema:
    """Header and (with ``scan``) a streamed typed scan of a CSV or CSV.gz file.

    :param engine: ``"auto"`` (Arrow, falling back to Python where Arrow cannot vouch for
        the file), ``"arrow"`` (the same), or ``"python"`` (row by row, the reference).
        Both give the same findings; see :mod:`safeload.contracts.csv_arrow`.
    """
    if engine not in ("auto", "arrow", "python"):
        raise ValueError(f"engine {engine!r}: use 'auto', 'arrow' or 'python'")
    from safeload.contracts.csv_arrow import scan_csv_arrow

    with CsvReader(path) as reader:
        header = reader.header
        dupes = sorted({h for h in header if header.count(h) > 1})
        if dupes:
            raise SourceError(f"{path} line 1: the header names column {dupes[0]!r} more than once; "
                              "column names must be unique")
        schema = SourceSchema(str(path), "csv", [SourceColumn(h) for h in header])
        if not scan:
            return schema
        if engine == "python" or not scan_csv_arrow(schema, contract, path):
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
    if getattr(arrow_type, "extension_name", None) == "arrow.uuid":  # Parquet's UUID type
        return PgType("uuid")
    if pa.types.is_nested(arrow_type):  # struct, list, map: the load writes each value as JSON text
        return PgType("jsonb")
    if pa.types.is_time(arrow_type):
        return PgType("time")
    name = str(arrow_type)
    if name in _ARROW_TO_PG:
        return parse_type(_ARROW_TO_PG[name])
    raise SourceError(f"Parquet type {name} has no PostgreSQL mapping in safeload; cast it upstream")


def introspect_parquet(path: str | Path, contract: Contract | None = None) -> SourceSchema:
    """Column names, types and nullability from the Parquet footer; with a contract that
    has value rules, the columns they need are read, a row group's batches at a time."""
    p = open_random(path)
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
    _check_carried(pf, schema, contract, p)
    values = RuleBatches(contract)
    check = values.start(schema.column_names, text=False) if values.wanted else None
    if check is not None and check.active:
        row = 1
        try:
            for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=sorted(check.needed) or None):
                check.feed(batch, line_numbers(row, batch.num_rows))
                row += batch.num_rows
        except Exception as e:  # noqa: BLE001 - pyarrow raises ArrowInvalid, OSError, ...
            values.close()
            raise SourceError(f"{p}: a data page cannot be read ({e}); deliver the complete file again") from None
    schema.rule_results = values.finish(pf.metadata.num_rows)
    return schema


def _check_carried(pf: Any, schema: SourceSchema, contract: Contract | None, where: Any) -> None:
    """Check every value of the Parquet string columns that carry a contract type of
    :data:`TEXT_CARRIES` (a UUID as text); the misfits are counted with their rows in the
    column's scan, as a CSV scan counts a text file's (``invalid_values``)."""
    if contract is None:
        return
    wants = {normalise(c.name): c.type for c in contract.columns if c.type.name in TEXT_CARRIES}
    carried = {c.name: wants[normalise(c.name)] for c in schema.columns
               if c.type is not None and c.type.name == "text" and normalise(c.name) in wants}
    if not carried:
        return
    import pyarrow as pa
    import pyarrow.compute as pc

    patterns = {name: fast_filter(want)[1] for name, want in carried.items()}
    row = 1
    try:
        for batch in pf.iter_batches(batch_size=BATCH_ROWS, columns=list(carried)):
            for name, want in carried.items():
                values, pattern = batch.column(name), patterns[name]
                bad = pc.invert(pc.fill_null(pc.match_substring_regex(values, pattern), True))
                found = pc.sum(bad).as_py() or 0
                if found:
                    scan = schema.scans[name]
                    scan.invalid += found
                    for i in pc.indices_nonzero(bad).to_pylist()[:max(0, MAX_EXAMPLES - len(scan.examples))]:
                        value = values[i].as_py()
                        scan.examples.append((row + i, value, check_value(value, want) or f"{value!r} is not a {want}"))
            row += batch.num_rows
    except (OSError, pa.ArrowException) as e:
        raise SourceError(f"{where}: a data page cannot be read ({e}); deliver the complete file again") from None


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
