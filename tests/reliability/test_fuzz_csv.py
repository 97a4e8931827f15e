"""Fuzzing CSV sources against the real loader and contract check.

hypothesis writes CSV files cell by cell: ragged rows, quotes, commas and newlines in
fields, NUL bytes, huge fields (over Python's default 128 KiB field limit), ``\\N``,
``\\.``, NaN and Infinity, time zones and naive timestamps, other partitions, stray quotes,
in UTF-8, UTF-8 with a BOM, Latin-1 and UTF-16, plain or gzipped, LF or CRLF.

Each cell is generated with its meaning: *strictly valid* (the contract's reading: what
:func:`check_value` must accept) or not, and PostgreSQL itself says whether it accepts the
text (``select text::type``, asked on the same server). From that the test knows the
exact outcome of a load:

* every row fits PostgreSQL: the straight COPY loads all of it, with PostgreSQL's values;
* on PostgreSQL 17 and later, where the only misfits are values their type refuses (and
  COPY counts the file's lines as it has them): the straight COPY skips those rows, which
  are the quarantine, and loads the rest (decision 043);
* otherwise the checked path loads exactly the strictly valid rows of the partition and
  quarantines the others, each with its line and a reason naming the column (or the
  field count, or the other partition);
* over the threshold, or a file that cannot be read (bad encoding, broken quoting): the
  load is refused with an error naming the line, and the target is unchanged.

What is in the table is compared with what the CSV said, value by value, both as
PostgreSQL reads the text and (for strictly valid values) as Python parses it. The
contract check of the same file must pass exactly when every value is strictly valid.
"""

from __future__ import annotations

import datetime as dt
import gzip
import re
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal

import psycopg
import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from reliability.figures import FULL, record, trials
from safeload.contracts.check import check_source
from safeload.contracts.model import parse_contract
from safeload.errors import LoadRefusedError, SourceError
from safeload.loads.loader import PartitionLoader
from safeload.metadata import ensure_metadata
from safeload.loads.sql import partition_checksum

DAY = "2024-05-02"
COLUMNS = [("id", "bigint", False), ("d", "date", False), ("amount", "numeric(12,2)", True),
           ("ratio", "double precision", True), ("name", "text", True), ("ts", "timestamptz", True)]
HEADER = [c for c, _, _ in COLUMNS]
DDL = "create table public.fz (" + ", ".join(
    f"{c} {t}{'' if nullable else ' not null'}" for c, t, nullable in COLUMNS) + ")"
CONTRACT = parse_contract({
    "dataset": "fz", "target": {"table": "public.fz", "partition_column": "d"},
    "columns": [{"name": c, "type": t, "nullable": nullable} for c, t, nullable in COLUMNS],
}, source="fz.yaml")

N = trials(fast=30, full=600)
FUZZ = settings(max_examples=N, deadline=None, derandomize=not FULL,
                suppress_health_check=list(HealthCheck))


@dataclass(frozen=True)
class Cell:
    text: str
    quoted: bool  # written in quotes (needed for "" and for text with , " CR LF)
    strict: bool  # the contract's reading: a valid value (or an allowed empty)
    value: object = None  # Python's reading of a strictly valid value (None: NULL)


# ----------------------------------------------------------------- cells by column

big = st.integers(min_value=-(2**63), max_value=2**63 - 1)
ids = st.one_of(
    big.map(lambda i: Cell(str(i), False, True, i)),
    big.map(lambda i: Cell(f" {i} ", True, True, i)),  # PostgreSQL and the contract trim integers
    st.sampled_from([Cell("", False, False), Cell("", True, False), Cell("1.5", False, False),
                     Cell("9223372036854775808", False, False), Cell("x", False, False),
                     Cell("\\N", False, False), Cell("1\x00", False, False), Cell("NaN", False, False),
                     Cell("1e3", False, False)]),
)
days = st.one_of(
    st.just(Cell(DAY, False, True, dt.date(2024, 5, 2))),
    st.just(Cell("20240502", False, True, dt.date(2024, 5, 2))),  # ISO basic format: both accept
    st.sampled_from([Cell("2024-05-01", False, True, dt.date(2024, 5, 1)),  # valid, but another partition
                     Cell("2024-02-30", False, False), Cell("", False, False), Cell("\\N", False, False),
                     Cell("2024-5-2", False, False), Cell("05/02/2024", False, False),
                     Cell("May 2, 2024", True, False), Cell("yesterday", False, False),
                     Cell("2024-W18-4", False, False)]),  # an ISO week date: Python reads it, PostgreSQL not
)


def _money(d: Decimal) -> Decimal:
    return d.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)


amounts = st.one_of(
    st.decimals(min_value=Decimal("-9999999999.99"), max_value=Decimal("9999999999.99"), places=2,
                allow_nan=False, allow_infinity=False).map(lambda d: Cell(str(d), False, True, _money(d))),
    st.decimals(min_value=Decimal("-999"), max_value=Decimal("999"), places=4,
                allow_nan=False, allow_infinity=False).map(lambda d: Cell(str(d), False, True, _money(d))),
    st.sampled_from([Cell("", False, True, None), Cell("1e3", False, True, Decimal("1000.00")),
                     Cell("12,5O", True, False), Cell("99999999999.99", False, False),
                     Cell("9999999999.995", False, False), Cell("NaN", False, False),
                     Cell("Infinity", False, False), Cell("-inf", False, False), Cell("\\N", False, False),
                     Cell("", True, False)]),  # quoted "": an empty string, not NULL, to PostgreSQL
)
ratios = st.one_of(
    st.floats(allow_nan=False, allow_infinity=False).map(lambda f: Cell(repr(f), False, True, f)),
    st.sampled_from([Cell("", False, True, None), Cell("1e308", False, True, 1e308), Cell("NaN", False, False),
                     Cell("Infinity", False, False), Cell("-inf", False, False), Cell("1e309", False, False),
                     Cell("1,5", True, False), Cell("0x10", False, False)]),
)
TEXT_ALPHABET = st.characters(codec="utf-8", exclude_categories=("Cs",), exclude_characters="\x00")
names = st.one_of(
    st.text(TEXT_ALPHABET, max_size=20).map(lambda s: Cell(s, True, True, s)),
    st.sampled_from(['a,b', 'say "hi"', "two\nlines", "cr\r\nlf", "lone\rcr", "\\N", "\\.", " padded ",
                     "NULL", "null", "é日本", "'; drop table fz; --", "\ufeffbom"]).map(lambda s: Cell(s, True, True, s)),
    st.integers(131_000, 140_000).map(lambda n: Cell("h" * n, False, True, "h" * n)),  # over Python's csv limit
    st.sampled_from([Cell("", False, True, None), Cell("nul\x00byte", True, False)]),
)
offsets = st.sampled_from(["+00:00", "Z", "+05:30", "-08:00", "+14:00", "-12:00", "+01:00"])
instants = st.datetimes(min_value=dt.datetime(1900, 1, 1), max_value=dt.datetime(2100, 1, 1))


def _aware(t: dt.datetime, off: str) -> Cell:
    text = t.isoformat() + off
    return Cell(text, False, True, dt.datetime.fromisoformat(text))


stamps = st.one_of(
    st.builds(_aware, instants, offsets),
    st.sampled_from([Cell("", False, True, None), Cell("2024-05-02 10:00:00", False, False),  # naive
                     Cell("2024-05-02 10:00 Europe/Paris", False, False), Cell("epoch", False, False),
                     Cell("infinity", False, False), Cell("2024-05-02 25:00+00", False, False),
                     Cell("not a time", False, False)]),
)
CELLS = [ids, days, amounts, ratios, names, stamps]


@st.composite
def rows(draw):
    cells = [draw(s) for s in CELLS]
    shape = draw(st.sampled_from(["ok"] * 24 + ["short", "long", "junk"]))
    if shape == "short":
        cells = cells[:draw(st.integers(1, 5))]
    elif shape == "long":
        cells = [*cells, Cell("extra", False, True, "extra")]
    elif shape == "junk":  # a stray quote: PostgreSQL reads "1"x as 1x, Python's strict csv refuses it
        return ("junk", cells)
    return (shape, cells)


def _render(cell: Cell) -> str:
    needs = cell.quoted or any(ch in cell.text for ch in ',"\r\n') or cell.text.strip() != cell.text
    return '"' + cell.text.replace('"', '""') + '"' if needs else cell.text


_NEWLINE = re.compile(r"\r\n|\r|\n")


@dataclass
class Expected:
    data: bytes
    encoding_ok: bool
    junk_line: int | None
    rows: list[tuple[int, str, list[Cell]]]  # (end line, shape, cells) of each non-blank record
    copy_lines: dict[int, int]  # a record's end line as COPY counts it (only the file's own line ends)


def build_file(spec_rows, eol, encoding) -> Expected:
    text = ",".join(HEADER) + eol
    line = copy_line = 1
    out = []
    copy_lines = {}
    junk_line = None
    for shape, cells in spec_rows:
        if shape == "junk":
            rendered = '"1"x,' + ",".join(_render(c) for c in cells[1:])
        else:
            rendered = ",".join(_render(c) for c in cells)
        start = line + 1
        line = start + len(_NEWLINE.findall(rendered))
        # COPY counts the line ends of the file's kind (its first line's): a CR, or in a CRLF
        # file a bare LF, inside a quoted field is data to it, a line end to the reader
        copy_line += 1 + rendered.count(eol)
        copy_lines[line] = copy_line
        text += rendered + eol
        if shape == "junk":
            junk_line = junk_line or start
            out.append((line, shape, cells))
        elif rendered == "":
            continue  # a blank line: not a row for either reader
        else:
            out.append((line, shape, cells))
    if encoding == "latin-1":
        try:
            data = text.encode("latin-1")
        except UnicodeEncodeError:
            data = text.encode("utf-8")
    elif encoding == "utf-8-sig":
        data = b"\xef\xbb\xbf" + text.encode("utf-8")
    else:
        data = text.encode(encoding)
    ok = data.startswith(b"\xef\xbb\xbf") or data == text.encode("utf-8")
    if not ok:
        try:
            data.decode("utf-8")
            assume(False)  # Latin-1 bytes that happen to be valid UTF-8 mean other text
        except UnicodeDecodeError:
            pass
    return Expected(data, ok, junk_line, out, copy_lines)


class Oracle:
    """PostgreSQL's reading of a text as a column type, asked once per distinct text."""

    def __init__(self, conn):
        self.conn = conn
        self.cache: dict[tuple[str, str], tuple[bool, str | None]] = {}

    def pg(self, text: str, pg_type: str, quoted: bool) -> tuple[bool, str | None]:
        """(accepted, value as text) as COPY CSV reads the cell; unquoted empty is NULL."""
        if text == "" and not quoted:
            return True, None
        key = (text, pg_type)
        if key not in self.cache:
            try:
                with self.conn.transaction():
                    v = self.conn.execute(f"select (%s::{pg_type})::text", (text,)).fetchone()[0]
                self.cache[key] = (True, v)
            except psycopg.DataError:  # includes the client's refusal of NUL bytes
                self.cache[key] = (False, None)
        return self.cache[key]


def expected_outcome(exp: Expected, oracle: Oracle, skips: bool = False):
    """What the load must do: ('copy'|'checked', loaded rows as text, quarantined lines).

    :param skips: the server skips rows whose values a type refuses (PostgreSQL 17+, COPY's
        ON_ERROR ignore; decision 043): where every other row fits and COPY names the
        skipped rows' lines as the file has them, the straight COPY loads the rest and the
        skipped rows are the quarantine
    """
    pg_rows, checked_rows, bad = [], [], []
    all_fit = True
    refused: list[int] = []  # rows with a value its type refuses (skippable)
    kept: list[tuple[list, bool]] = []  # the other rows: PostgreSQL's values, whether they fit
    hard = False  # something COPY cannot skip: a NUL byte, a row too long, or too short with every value fine
    for line, shape, cells in exp.rows:
        pg_vals, checked_vals, fits, strict_ok = [], [], shape == "ok", shape == "ok"
        hard |= shape == "long" or any("\x00" in c.text for c in cells)  # refused before its values are read
        if shape == "short":
            # COPY converts the values it has, in order, before it misses the next one: a
            # refused value skips the row, else the missing one fails the COPY
            if all(oracle.pg(c.text, t, c.quoted)[0] for (_, t, _), c in zip(COLUMNS, cells)):
                hard = True
            else:
                refused.append(line)
        if shape == "ok":
            row_refused = False
            for (col, pg_type, nullable), cell in zip(COLUMNS, cells):
                accepted, v = oracle.pg(cell.text, pg_type, cell.quoted)
                row_refused |= not accepted
                if cell.strict and cell.text != "":
                    assert accepted, f"the test thought {cell.text!r} valid for {pg_type}; PostgreSQL refuses it"
                if not accepted or (v is None and not nullable) or (col == "d" and v is not None and v != DAY):
                    fits = False
                pg_vals.append(v)
                # the checked path: an empty field (quoted or not) is NULL; else the strict reading
                if cell.text == "":
                    checked_vals.append(None)
                    strict_ok &= nullable
                else:
                    checked_vals.append(v)
                    strict_ok &= cell.strict and accepted and not (col == "d" and v != DAY)
            if row_refused:
                refused.append(line)
            else:
                kept.append((pg_vals, fits))
        all_fit &= fits
        pg_rows.append(pg_vals)
        if strict_ok:
            checked_rows.append(checked_vals)
        else:
            bad.append(line)
    if all_fit:
        return "copy", pg_rows, []
    if skips and not hard and all(fits for _, fits in kept) \
            and all(exp.copy_lines[line] == line for line in refused):
        return "copy", [vals for vals, _ in kept], refused
    return "checked", checked_rows, bad


def contract_should_pass(exp: Expected) -> bool:
    for _, shape, cells in exp.rows:
        if shape != "ok":
            return False
        for (_, _, nullable), cell in zip(COLUMNS, cells):
            if cell.text == "" and not nullable:
                return False
            if cell.text != "" and not cell.strict:
                return False
    return True


def snapshot(pg) -> list[tuple]:
    return sorted(pg.execute("select n.nspname, c.relname, c.relkind from pg_class c join pg_namespace n "
                             "on n.oid = c.relnamespace where n.nspname not in ('pg_catalog', 'information_schema', "
                             "'pg_toast')").fetchall())


def table_rows(pg) -> list[list[str | None]]:
    cols = ", ".join(f"{c}::text" for c in HEADER)
    return pg.execute(f"select {cols} from public.fz where d = %s", (DAY,)).fetchall()


def _key(row):
    return [(v is None, v or "") for v in row]


STATS = {"examples": 0, "copy": 0, "checked": 0, "refused": 0, "unreadable": 0, "contract_refused": 0}


@pytest.fixture
def fz(pg, pg_uri, tmp_path):
    pg.execute(DDL)
    # an old version of the partition and a neighbour, so "unchanged" means something
    pg.execute("insert into public.fz select g, %s, g, g, 'old', now() from generate_series(1, 5) g", (DAY,))
    pg.execute("insert into public.fz select g, '2024-05-01', g, g, 'neighbour', now() from generate_series(1, 3) g")
    ensure_metadata(pg)  # so that the catalogue snapshots compare like with like
    return pg


@FUZZ
@given(spec_rows=st.lists(rows(), min_size=1, max_size=8),
       eol=st.sampled_from(["\n", "\r\n"]),
       encoding=st.sampled_from(["utf-8"] * 8 + ["utf-8-sig", "latin-1", "utf-16"]),
       gz=st.booleans(),
       max_bad_rows=st.sampled_from([None, 0]))
def test_csv_is_loaded_exactly_or_refused_clearly(fz, pg_uri, tmp_path, spec_rows, eol, encoding, gz,
                                                   max_bad_rows):
    pg = fz
    exp = build_file(spec_rows, eol, encoding)
    STATS["examples"] += 1
    path = tmp_path / ("src.csv.gz" if gz else "src.csv")
    path.write_bytes(gzip.compress(exp.data) if gz else exp.data)
    before = partition_checksum(pg, "public.fz", "d", DAY)
    neighbour = partition_checksum(pg, "public.fz", "d", "2024-05-01")
    catalogue = snapshot(pg)
    run_key = f"fuzz{STATS['examples']}"
    ld = PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.fz", partition_column="d",
                         partition_value=DAY, run_key=run_key, max_bad_rows=max_bad_rows)

    def unchanged():
        assert partition_checksum(pg, "public.fz", "d", DAY) == before
        assert partition_checksum(pg, "public.fz", "d", "2024-05-01") == neighbour
        assert snapshot(pg) == catalogue, "the refused load left an object behind"

    if not exp.encoding_ok:
        # whichever comes first: the undecodable byte, or a junk line before it
        with pytest.raises(SourceError, match=r"line \d+: (not valid UTF-8|malformed CSV)"):
            ld.run(str(path))
        unchanged()
        STATS["unreadable"] += 1
        return
    # PostgreSQL 17 and later skip and name the rows a type refuses (COPY's ON_ERROR ignore)
    path_kind, loaded, bad = expected_outcome(exp, Oracle(pg), skips=pg.info.server_version >= 170000)
    if exp.junk_line is not None:
        # PostgreSQL refuses "1"x as a bigint, so the checked path reads the file and stops there
        with pytest.raises(SourceError, match=rf"line {exp.junk_line}: malformed CSV"):
            ld.run(str(path))
        unchanged()
        STATS["unreadable"] += 1
        return

    # the contract check of the same file (before loading, as the operators do)
    report = check_source(CONTRACT, str(path)) if exp.rows else None
    if report is not None:
        assert report.passed == contract_should_pass(exp), report.summary()
        STATS["contract_refused"] += not report.passed

    if not exp.rows:
        with pytest.raises(LoadRefusedError, match="no rows"):
            ld.run(str(path))
        unchanged()
        STATS["refused"] += 1
        return
    if bad and max_bad_rows == 0:
        first = min(bad)
        with pytest.raises(LoadRefusedError, match=rf"{len(bad)} of {len(exp.rows)} row\(s\) are malformed.*"
                                                   rf"First: line {first}: "):
            ld.run(str(path))
        unchanged()
        assert pg.execute("select count(*) from safeload.quarantine where run_key = %s",
                          (run_key,)).fetchone()[0] == len(bad)
        STATS["refused"] += 1
        return
    if not loaded:
        # no threshold, but every row is bad: replacing the partition with nothing is refused
        with pytest.raises(LoadRefusedError, match="every row"):
            ld.run(str(path))
        unchanged_but_quarantine = pg.execute("select count(*) from safeload.quarantine where run_key = %s",
                                              (run_key,)).fetchone()[0]
        assert unchanged_but_quarantine == len(bad)
        assert partition_checksum(pg, "public.fz", "d", DAY) == before
        STATS["refused"] += 1
        return

    staged = ld.stage(str(path))
    assert staged.path == path_kind
    result = ld.publish(staged)
    assert result.rows_source == len(exp.rows)
    assert (result.rows, result.rows_quarantined) == (len(loaded), len(bad))
    assert sorted(map(_key, table_rows(pg))) == sorted(map(_key, loaded)), "the table differs from the CSV"
    # strictly valid values, as Python reads them (an independent reading of the CSV)
    # (infinite timestamps, loaded from the lenient 'infinity', have no Python value)
    typed = pg.execute("select id, d, amount, ratio, name, case when isfinite(ts) then ts end from public.fz "
                       "where d = %s", (DAY,)).fetchall()
    for line, shape, cells in exp.rows:
        if line in bad or not all(c.strict and c.text != "" for c in cells):
            continue
        want = tuple(c.value for c in cells)
        assert want in typed, f"line {line}: {want!r} is not in the table"
    quarantined = pg.execute("select line, reason from safeload.quarantine where run_key = %s order by line",
                             (run_key,)).fetchall()
    assert [ln for ln, _ in quarantined] == sorted(bad)
    for ln, reason in quarantined:
        assert re.search(r"column '\w+'|fields, the header has|another partition", reason), reason
    assert partition_checksum(pg, "public.fz", "d", "2024-05-01") == neighbour
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0
    STATS[path_kind] += 1


def test_record_csv_figures():
    if not STATS["examples"]:
        pytest.skip("the fuzz test above did not run")
    faults = STATS["checked"] + STATS["refused"] + STATS["unreadable"]
    record("fuzz: CSV sources", trials=STATS["examples"], faults=faults,
           held=f"{STATS['copy']} loaded by COPY and {STATS['checked']} row by row, equal to the CSV value by "
                f"value; {STATS['refused']} refused over threshold and {STATS['unreadable']} unreadable, "
                "naming the line, target unchanged; contract verdict exact")
