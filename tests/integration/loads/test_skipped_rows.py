"""Rows PostgreSQL 17+ skips during the straight COPY (``ON_ERROR ignore``, ``LOG_VERBOSITY
verbose``) are quarantined exactly as the checked path quarantines them: the same lines,
raw text and reasons, whichever way the load goes (staged or direct), while the good rows
load at COPY speed. On older servers (PostgreSQL 15, 16) the same loads take the checked
path and give the same result: run these with ``SAFELOAD_TEST_PG_URI`` set to one."""

from __future__ import annotations

import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.loader import QuerySource
from safeload.loads.staging import skipped

from tests.integration.loads.orders import DAY, NATIVE_NOTE, PLAIN_NOTE, counts, loader, write

LONG = "x" * 150
ROWS = (f"order_id,order_date,amount,note\n"
        f"1,{DAY},1.00,plain\n"
        f'2,{DAY},2.00,"two\nlines"\n'
        f"3,{DAY},12;5,bad amount\n"
        f'4,{DAY},4.00,"a ""quoted"", word"\n'
        f"x5,{DAY},5.00,bad id\n"
        f'6,{DAY},6.00,"three\nlines\nhere"\n'
        f"7,2024-02-30,7.00,bad date\n"
        f'8,{DAY},99999999999999.00,"{LONG}"\n'
        f'{"9" * 120},{DAY},9.00,"{LONG}"\n'
        f"10,{DAY},10.00,last\n")


def quarantined(pg, run_key):
    return pg.execute("select line, raw, reason from safeload.quarantine where run_key = %s order by line",
                      (run_key,)).fetchall()


def server_skips(pg) -> bool:
    return pg.info.server_version >= skipped.SINCE


@pytest.mark.parametrize("table", [PLAIN_NOTE, NATIVE_NOTE], ids=["direct", "staged"])
def test_skipped_rows_are_quarantined_as_the_checked_path_quarantines_them(pg, pg_uri, tmp_path, monkeypatch,
                                                                           table):
    pg.execute(table)
    src = write(tmp_path / "a.csv", ROWS)
    r = loader(pg_uri, run_key="skip", max_bad_rows=10).run(src)
    assert (r.rows_source, r.rows, r.rows_quarantined) == (10, 5, 5)
    got = quarantined(pg, "skip")
    # the same load by the checked path (as on a server without ON_ERROR)
    monkeypatch.setattr(skipped, "supported", lambda conn: False)
    loader(pg_uri, run_key="checked", max_bad_rows=10).run(src)
    assert got == quarantined(pg, "checked")
    assert [line for line, _, _ in got] == [5, 7, 11, 12, 13]
    assert got[0][2] == "column 'amount': '12;5' is not a numeric(12,2)"
    assert got[1][1] == f"x5,{DAY},5.00,bad id"
    assert "2024-02-30" in got[2][2]
    assert got[3][2] == "column 'amount': '99999999999999.00' does not fit numeric(12,2) (too many integer digits)"
    assert counts(pg) == {DAY: 5}
    path = pg.execute("select message from safeload.load_history where status = 'published' order by id"
                      ).fetchall()
    assert len(path) == 2


def test_good_rows_load_at_copy_speed_on_a_server_that_skips(pg, pg_uri, tmp_path):
    """PostgreSQL 17+: the straight COPY keeps going (path 'copy'); older: row by row."""
    pg.execute(NATIVE_NOTE)
    staged = loader(pg_uri, max_bad_rows=10).stage(write(tmp_path / "a.csv", ROWS))
    assert staged.path == ("copy" if server_skips(pg) else "checked")
    assert staged.rows_quarantined == 5


def test_crlf_with_line_feeds_in_quoted_fields_is_loaded_by_the_checked_path(pg, pg_uri, tmp_path):
    """COPY does not count a bare line feed inside quotes as a line in a CRLF file (it
    names the skipped row line 4, the source's reader line 5): the skipped row is not
    confirmed where COPY says, so the checked path names it."""
    pg.execute(NATIVE_NOTE)
    path = tmp_path / "crlf.csv"
    path.write_bytes(f'order_id,order_date,amount,note\r\n1,{DAY},1.00,"a\nb"\r\n2,{DAY},2.00,c\r\n'
                     f'3,{DAY},zz,d\r\n'.encode())
    staged = loader(pg_uri, run_key="crlf", max_bad_rows=1).stage(str(path))
    assert (staged.rows_loaded, staged.rows_quarantined, staged.path) == (2, 1, "checked")
    assert [line for line, _, _ in quarantined(pg, "crlf")] == [5]


def test_every_row_skipped_is_refused_not_published_empty(pg, pg_uri, tmp_path):
    pg.execute(PLAIN_NOTE)
    loader(pg_uri, run_key="a").run(write(tmp_path / "a.csv", f"order_id,order_date,amount,note\n1,{DAY},1,n\n"))
    src = write(tmp_path / "b.csv", f"order_id,order_date,amount,note\nx,{DAY},1,n\ny,{DAY},1,n\n")
    with pytest.raises(LoadRefusedError, match=r"2 of 2 row\(s\) are malformed \(every row"):
        loader(pg_uri, run_key="b", max_bad_rows=None).run(src)
    assert counts(pg) == {DAY: 1}
    assert [line for line, _, _ in quarantined(pg, "b")] == [2, 3]


def test_a_row_the_server_cannot_skip_still_goes_the_checked_way(pg, pg_uri, tmp_path):
    """ON_ERROR covers values their type refuses, not a missing field or an empty NOT NULL."""
    pg.execute(NATIVE_NOTE)
    src = write(tmp_path / "a.csv", f"order_id,order_date,amount,note\n1,{DAY},zz,n\n2,{DAY}\n3,{DAY},,n\n"
                                    f"4,{DAY},4,n\n")
    staged = loader(pg_uri, run_key="mixed", max_bad_rows=3).stage(src)
    assert (staged.rows_loaded, staged.path) == (1, "checked")
    reasons = [reason for _, _, reason in quarantined(pg, "mixed")]
    assert "is not a numeric" in reasons[0] and "fields" in reasons[1] and "NOT NULL" in reasons[2]


def test_a_query_sources_skipped_rows_are_named_by_their_row(pg, pg_uri):
    pg.execute(NATIVE_NOTE)
    pg.execute("create table public.src (order_id text, order_date date, amount text, note text)")
    pg.execute(f"insert into public.src values ('1', '{DAY}', '1.00', 'a'), ('2', '{DAY}', 'oops', 'b'), "
               f"('3', '{DAY}', '3.00', 'c')")
    src = QuerySource.from_conninfo(pg_uri, "select * from public.src order by order_id")
    staged = loader(pg_uri, run_key="query", max_bad_rows=1).stage(src)
    assert (staged.rows_loaded, staged.path) == (2, "copy" if server_skips(pg) else "checked")
    (line, raw, reason), = quarantined(pg, "query")
    assert line == 2 and '"amount": "oops"' in raw and reason == "column 'amount': 'oops' is not a numeric(12,2)"
