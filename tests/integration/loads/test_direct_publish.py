"""``direct``: a plain table loaded as one unit takes the rows straight into the target,
inside the publishing transaction. Readers keep the old rows until the COMMIT, a failure
anywhere leaves them, rows outside the partition are quarantined (never written beside
it), the audit runs on the transaction's own rows, and where direct does not fit the load
is staged instead."""

from __future__ import annotations

import threading

import psycopg
import pytest

from safeload.errors import LoadRefusedError, LockTimeoutError
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import (
    DAY,
    OTHER_DAY,
    PLAIN,
    PLAIN_NOTE,
    amounts,
    counts,
    loader,
    write,
    write_csv,
    write_rows,
)


def history(pg):
    return pg.execute("select status, message from safeload.load_history order by id").fetchall()


def test_a_plain_table_is_replaced_with_one_write(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, OTHER_DAY, run_key="n").run(write_csv(tmp_path / "n.csv", OTHER_DAY, 50))
    loader(pg_uri, run_key="a").run(write_csv(tmp_path / "a.csv", DAY, 300))
    r = loader(pg_uri, run_key="b").run(write_csv(tmp_path / "b.csv", DAY, 200, start=1000))
    assert (r.rows, r.rows_replaced, r.rows_source, r.published_by) == (200, 300, 200, "direct")
    assert (r.rows, r.checksum) == partition_checksum(pg, "public.orders", "order_date", DAY)
    assert counts(pg) == {DAY: 200, OTHER_DAY: 50}
    assert history(pg)[-1] == ("published", "replaced 300 row(s) by direct COPY")
    # no staging table was made: the rows went into the target once
    assert pg.execute("select count(*) from safeload.staging").fetchone() == (0,)
    assert pg.execute("select n_tup_ins from pg_stat_user_tables where relname = 'orders'").fetchone() == (550,)


def test_readers_see_the_old_rows_until_the_commit(pg, pg_uri, tmp_path):
    """Read mid-COPY (the DELETE done, half the rows sent) and just before the COMMIT:
    always the old partition, from another session."""
    import reliability.harness as h

    pg.execute(h.PLAIN)
    h.loader(pg_uri, strategy="auto", run_key="old").run(h.write_csv(tmp_path / "old.csv", h.DAY, 3000))
    old = h.totals(pg)
    seen = []

    def look(phase):
        if phase in ("copy:1", "publish:before-commit"):
            seen.append((phase, h.totals(pg)))

    r = h.loader(pg_uri, strategy="auto", run_key="new", hook=look).run(
        h.write_csv(tmp_path / "new.csv", h.DAY, 2000, start=50_000))
    assert r.published_by == "direct"
    assert seen == [("copy:1", old), ("publish:before-commit", old)]
    assert h.totals(pg)[0] == 2000


@pytest.mark.parametrize(("bad", "reason"), [
    pytest.param(["9001", OTHER_DAY, "1.00", "placed"], "belongs to another partition", id="another-day"),
    pytest.param(["9002", "", "1.00", "placed"], "is empty", id="no-day"),
])
def test_rows_outside_the_partition_are_quarantined_not_written(pg, pg_uri, tmp_path, bad, reason):
    """The target has no CHECK pinning rows to the day (staging does): COPY takes such a row,
    the audit scan finds the partition short of what COPY loaded, and the load goes again
    row by row, which quarantines it."""
    pg.execute(PLAIN.replace("order_date date not null", "order_date date"))
    loader(pg_uri, OTHER_DAY, run_key="n").run(write_csv(tmp_path / "n.csv", OTHER_DAY, 5))
    r = loader(pg_uri, run_key="q", max_bad_rows=1).run(write_csv(tmp_path / "a.csv", DAY, 100, bad=[bad]))
    assert (r.rows, r.rows_quarantined, r.published_by) == (100, 1, "direct")
    assert counts(pg) == {DAY: 100, OTHER_DAY: 5}
    (line, why), = pg.execute("select line, reason from safeload.quarantine").fetchall()
    assert line == 102 and reason in why


def test_a_failure_anywhere_leaves_the_old_partition(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    pg.execute("create unique index orders_key on public.orders (order_id)")
    loader(pg_uri, run_key="a").run(write_csv(tmp_path / "a.csv", DAY, 100))
    before = partition_checksum(pg, "public.orders", "order_date", DAY)
    loader(pg_uri, OTHER_DAY, run_key="n").run(write_csv(tmp_path / "n.csv", OTHER_DAY, 10, start=5000))
    # a key the target's unique index refuses (another day's order 5000): refused, named, nothing changed
    with pytest.raises(LoadRefusedError, match=r"break a unique key of the target .*order_id\)=\(5000\)"):
        loader(pg_uri, run_key="dup").run(write_csv(tmp_path / "d.csv", DAY, 10, start=4995))
    # over the threshold of bad rows
    with pytest.raises(LoadRefusedError, match="malformed"):
        loader(pg_uri, run_key="bad").run(write_csv(tmp_path / "b.csv", DAY, 10, start=200,
                                                   bad=[["x", DAY, "1", "placed"]]))
    assert partition_checksum(pg, "public.orders", "order_date", DAY) == before
    assert [s for s, _ in history(pg)] == ["published", "published", "refused", "refused"]


def test_the_audit_runs_inside_the_transaction_and_can_stop_it(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, run_key="a").run(write_csv(tmp_path / "a.csv", DAY, 100))
    before = partition_checksum(pg, "public.orders", "order_date", DAY)
    seen = {}

    def audit(a):
        # the transaction's own rows: the new partition, visible on its connection only
        seen["inside"] = a.conn.execute(f"select count(*), min(order_id) from {a.table} where {a.where}").fetchone()
        with psycopg.connect(pg_uri) as other:
            seen["outside"] = other.execute(f"select count(*), min(order_id) from {a.table} where {a.where}"
                                            ).fetchone()
        raise LoadRefusedError("the gate said no")

    with pytest.raises(LoadRefusedError, match="the gate said no"):
        loader(pg_uri, run_key="b").run(write_csv(tmp_path / "b.csv", DAY, 40, start=700), audit_hook=audit)
    assert seen == {"inside": (40, 700), "outside": (100, 1)}
    assert partition_checksum(pg, "public.orders", "order_date", DAY) == before
    assert history(pg)[-1] == ("refused", "the gate said no")


def test_an_audit_that_cannot_check_inside_the_transaction_gets_a_staging_table(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    tables = []
    r = loader(pg_uri).run(write_csv(tmp_path / "a.csv", DAY, 10), audit_in_transaction=False,
                           audit_hook=lambda a: tables.append((a.table, a.where, a.conn, a.rows)))
    assert r.published_by == "delete_insert"
    assert tables[0][0].startswith("safeload_staging.") and tables[0][1:] == (None, None, 10)


@pytest.mark.parametrize("case", ["extra column", "no partition column", "evolve"])
def test_where_direct_does_not_fit_the_load_is_staged(pg, pg_uri, tmp_path, case):
    pg.execute(PLAIN)
    kw = {}
    if case == "extra column":  # kept in staging only
        src = write_rows(tmp_path / "a.csv", [[1, DAY, "1.00", "x"]], header=("order_id", "order_date", "amount", "new"))
    elif case == "no partition column":  # staging fills it from a default
        src = write_rows(tmp_path / "a.csv", [[1, "1.00"]], header=("order_id", "amount"))
    elif case == "evolve":  # ALTER TABLE in the publish would lock readers out for the whole COPY
        src = write_rows(tmp_path / "a.csv", [[1, DAY, "1.00", "x"]], header=("order_id", "order_date", "amount", "new"))
        kw["add_columns"] = [("new", "text")]
    r = loader(pg_uri, **kw).run(src)
    assert r.published_by == "delete_insert"


def test_direct_asked_for_where_it_cannot_run_is_staged_too(pg, pg_uri, tmp_path):
    """By name, it still gives way where it does not apply (a natively partitioned target,
    separate stage and publish); where it only costs (evolve), it runs."""
    pg.execute(PLAIN_NOTE)
    src = write(tmp_path / "a.csv", f"order_id,order_date,amount,note,extra\n1,{DAY},1.00,n,x\n")
    r = loader(pg_uri, publish_strategy="direct", add_columns=[("extra", "text")]).run(src)
    assert (r.published_by, r.added_columns) == ("direct", ["extra"])
    assert pg.execute("select extra from public.orders").fetchone() == ("x",)


def test_the_load_holds_its_locks_for_the_copy(pg, pg_uri, tmp_path):
    """The price of one write (decision 040): the partition's advisory lock and the
    target's ROW EXCLUSIVE are held while the COPY runs, not only for a publish. A second
    load of the same partition waits for it, up to lock_timeout; DDL on the table too.
    Loads of other days and readers do not wait."""
    import reliability.harness as h

    pg.execute(h.PLAIN)
    h.loader(pg_uri, strategy="auto", run_key="old").run(h.write_csv(tmp_path / "old.csv", h.DAY, 100))
    seen = {}
    release = threading.Event()

    def hold(phase):
        if phase == "copy:1" and not seen:
            seen["modes"] = sorted(m for (m,) in pg.execute(
                """select l.mode from pg_locks l join pg_stat_activity a using (pid)
                   where l.locktype = 'relation' and l.relation = 'public.orders'::regclass
                     and a.application_name = %s""",
                (h.APP,)).fetchall())
            try:
                h.loader(pg_uri, strategy="auto", run_key="same", app="same-day", lock_timeout="300ms").run(
                    h.write_csv(tmp_path / "s.csv", h.DAY, 5))
            except LockTimeoutError as e:
                seen["same day"] = e.retryable
            seen["other day"] = h.loader(pg_uri, strategy="auto", run_key="other", day=h.NEIGHBOUR,
                                         app="other-day").run(h.write_csv(tmp_path / "o.csv", h.NEIGHBOUR, 7)).rows
            seen["reader"] = h.totals(pg)[0]
            release.set()

    r = h.loader(pg_uri, strategy="auto", run_key="long", hook=hold).run(
        h.write_csv(tmp_path / "d.csv", h.DAY, 20000, start=1000))
    assert release.is_set() and r.published_by == "direct"
    assert seen == {"modes": ["RowExclusiveLock"], "same day": True, "other day": 7,
                    "reader": 100}
    assert counts(pg) == {h.DAY: 20000, h.NEIGHBOUR: 7}


def test_amounts_are_the_sources_values(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri).run(write(tmp_path / "a.csv", f"order_id,order_date,amount,status\n1,{DAY},1.50,a\n2,{DAY},2,\n"))
    assert [(i, str(a)) for i, a in amounts(pg)] == [(1, "1.50"), (2, "2.00")]
    assert pg.execute("select status from public.orders where order_id = 2").fetchone() == (None,)
