"""The target's CHECK constraints. Only PostgreSQL evaluates them, so a source row that
breaks one is refused at the stage, naming its line as the file counts it and the
constraint, and nothing is staged; a row of another partition is quarantined whatever
else it breaks. At publish, a CHECK of the day's partition itself, or a row with no
sub-partition to go to, is refused with the fix that applies, and the partition stays
as it was."""

from __future__ import annotations

import psycopg
import pytest

from safeload.errors import LoadRefusedError
from safeload.loads.loader import QuerySource
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import (
    DAY,
    NATIVE,
    NATIVE_NOTE,
    OTHER_DAY,
    PLAIN,
    PLAIN_NOTE,
    amounts,
    loader,
    partition_with_own_check,
    write,
    write_amounts,
    write_csv,
)


@pytest.mark.parametrize("strategy", ["auto", "delete_insert"])
def test_a_row_breaking_a_check_constraint_is_refused_naming_its_line(pg, pg_uri, tmp_path, strategy):
    """Rows whose values do not fit the types are quarantined; a row that breaks one of the
    target's CHECK constraints cannot be (only PostgreSQL evaluates the expression), so the
    load is refused naming the file's line and the constraint. Here the checked path runs
    (line 3 does not parse), so COPY's line number is mapped back through the gap it left
    and through a record spread over two lines."""
    pg.execute(NATIVE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    loader(pg_uri, "2024-05-02", run_key="first").run(write_csv(tmp_path / "a.csv", "2024-05-02", 10))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    path = tmp_path / "b.csv"
    path.write_text("order_id,order_date,amount,status\n"      # line 1
                    "1,2024-05-02,1.00,placed\n"               # 2
                    "2,2024-05-02,not-a-number,placed\n"       # 3: quarantined
                    '3,2024-05-02,3.00,"two\nlines"\n'         # 4-5
                    "4,2024-05-02,4.00,placed\n"               # 6
                    "5,2024-05-02,-5.00,placed\n")             # 7: breaks amount_ok
    with pytest.raises(LoadRefusedError, match=r"b\.csv, line 7 breaks CHECK constraint 'amount_ok' of public\.orders"
                                               r".*-5\.00.*nothing was staged"):
        loader(pg_uri, "2024-05-02", run_key="b", publish_strategy=strategy, max_bad_rows=5).run(str(path))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select status from safeload.load_history order by id desc limit 1").fetchone() == ("refused",)


@pytest.mark.parametrize(("ddl", "strategy"), [(PLAIN, "auto"), (NATIVE, "auto"), (NATIVE, "delete_insert")],
                         ids=["plain", "native-swap", "native-delete-insert"])
def test_a_row_breaking_the_targets_check_constraint_is_named_not_a_raw_error(pg, pg_uri, tmp_path, ddl, strategy):
    """A source row that breaks one of the target's CHECK constraints, for every strategy
    (where the checked path checks types and NOT NULL only): not PostgreSQL's raw
    CheckViolation, but the row quarantined with its line and the constraint's name, or
    a LoadRefusedError naming both."""
    pg.execute(ddl + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    path = write_csv(tmp_path / "b.csv", DAY, 3)
    with open(path, "a") as fh:
        fh.write(f"9,{DAY},-1.00,placed\n")
    try:
        r = loader(pg_uri, publish_strategy=strategy, max_bad_rows=1).run(path)
    except LoadRefusedError as e:
        assert "amount_ok" in str(e) and "line 5" in str(e), e
        assert pg.execute("select count(*) from public.orders").fetchone()[0] == 0
        return
    assert (r.rows, r.rows_quarantined) == (3, 1)
    assert "amount_ok" in pg.execute("select reason from safeload.quarantine").fetchone()[0]


@pytest.mark.parametrize(("ddl", "strategy"),
                         [(PLAIN_NOTE, "auto"), (NATIVE_NOTE, "auto"), (NATIVE_NOTE, "delete_insert")],
                         ids=["plain", "native-swap", "native-delete-insert"])
@pytest.mark.parametrize("source", ["csv", "query"])
def test_a_row_of_another_day_breaking_a_target_check_is_quarantined_not_refusing_the_load(
        pg, pg_uri, tmp_path, ddl, strategy, source):
    """A daily delivery with one late row of another day, whose amount also breaks the
    target's ``amount_ok`` CHECK. PostgreSQL evaluates a table's CHECK constraints in
    name order ('amount_ok' < 'safeload_partition_check'), so the straight COPY meets
    ``amount_ok`` first; the load still goes to the checked path, where the row is
    quarantined as another partition's, and the day's 2 rows are published, from a file
    and from a query alike."""
    pg.execute(ddl + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    rows = [(1, DAY, "1.00"), (2, OTHER_DAY, "-5.00"), (3, DAY, "3.00")]
    if source == "csv":
        src = write(tmp_path / "a.csv", "order_id,order_date,amount\n" + "".join(
            f"{i},{d},{a}\n" for i, d, a in rows))
    else:
        pg.execute("create table public.src (order_id bigint, order_date date, amount numeric)")
        pg.cursor().executemany("insert into public.src values (%s, %s, %s)", rows)
        src = QuerySource(lambda: psycopg.connect(pg_uri), "select * from public.src order by order_id")
    r = loader(pg_uri, publish_strategy=strategy, max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (2, 1)
    assert "another partition" in pg.execute("select reason from safeload.quarantine").fetchone()[0]
    assert [i for i, _ in amounts(pg)] == [1, 3]


@pytest.mark.parametrize("strategy", ["auto", "delete_insert"])
def test_the_line_of_a_check_violation_in_a_crlf_file_with_line_feeds_in_quoted_fields(
        pg, pg_uri, tmp_path, strategy):
    """Excel writes CRLF between records and a bare LF inside a quoted cell. In a CRLF file
    COPY counts only CR line ends inside quotes, so its 'line 4' is not the file's line:
    the refusal names line 6, where the row with the negative amount is, as an editor,
    Python's csv reader and safeload's own quarantine count it."""
    pg.execute(NATIVE_NOTE + "; alter table public.orders add constraint amount_ok check (amount >= 0)")
    path = tmp_path / "excel.csv"
    path.write_bytes((f'order_id,order_date,amount,note\r\n1,{DAY},1.00,"first\nsecond\nthird"\r\n'
                      f'2,{DAY},2.00,b\r\n3,{DAY},-3.00,c\r\n').encode())
    with pytest.raises(LoadRefusedError) as e:
        loader(pg_uri, publish_strategy=strategy).run(str(path))
    assert "amount_ok" in str(e.value)
    assert f"{path}, line 6 " in str(e.value), e.value
    assert amounts(pg) == []


def test_a_partitions_own_check_refusal_does_not_blame_ddl_since_the_stage(pg, pg_uri, tmp_path):
    """DELETE + INSERT into a day's partition whose own CHECK (``small``) the staged rows
    break: the refusal names ``small`` without blaming a constraint "added since the
    stage" with the advice to stage again, which would loop (staging carries the
    parent's CHECKs, not the partition's, so a new stage passes and the publish fails
    the same way)."""
    partition_with_own_check(pg)
    with pytest.raises(LoadRefusedError) as e:
        loader(pg_uri, publish_strategy="delete_insert").run(write_amounts(tmp_path / "a.csv", [1, 2], amount=500))
    assert "small" in str(e.value)
    assert "added since the stage" not in str(e.value), e.value
    assert amounts(pg) == []


def test_a_staged_row_with_no_sub_partition_is_not_blamed_on_a_check_added_since_the_stage(pg, pg_uri, tmp_path):
    """The day's partition is sub-partitioned by note, with a partition for 'placed' only;
    a staged 'shipped' row has nowhere to go. PostgreSQL reports that with SQLSTATE
    23514 (check_violation) and no constraint name: the refusal says the row has no
    partition to go to, not that it breaks "CHECK constraint None, added since the
    stage"."""
    pg.execute(NATIVE_NOTE)
    pg.execute(f"create table public.orders_d partition of public.orders for values from ('{DAY}') to "
               f"('{OTHER_DAY}') partition by list (note)")
    pg.execute("create table public.orders_d_placed partition of public.orders_d for values in ('placed')")
    src = write(tmp_path / "a.csv", f"order_id,order_date,amount,note\n1,{DAY},1.00,placed\n2,{DAY},2.00,shipped\n")
    with pytest.raises(LoadRefusedError) as e:
        loader(pg_uri).run(src)
    assert "None" not in str(e.value) and "added since the stage" not in str(e.value), e.value
    assert "partition" in str(e.value) and "shipped" in str(e.value)
    assert amounts(pg) == []
