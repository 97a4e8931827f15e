"""A PostgreSQL query as the source: a real source database (another database on the same
server as the warehouse), streamed COPY TO -> COPY FROM, with the file loads' guarantees."""

from __future__ import annotations


import psycopg
import pytest
from pgtest import scratch_database

from safeload.errors import LoadRefusedError, SourceError, SourceUnavailableError
from safeload.loads.loader import PartitionLoader, QuerySource
from safeload.loads.sql import partition_checksum

PLAIN = """create table public.orders (order_id bigint not null, order_date date not null,
           amount numeric(12,2) not null, status text not null, note text)"""
NATIVE = PLAIN + " partition by range (order_date)"
SOURCE = """create schema shop;
create table shop.orders (order_id bigint, order_date date, amount numeric(14,2), status text, note text,
                          internal_flag boolean);
insert into shop.orders
select i, date '2024-05-01' + (i % 3), (i % 1000) / 10.0, case when i % 2 = 0 then 'paid' else 'placed' end,
       case when i % 5 = 0 then '' when i % 7 = 0 then null else 'n' || i end, i % 11 = 0
from generate_series(1, 3000) i;
"""
DAY_QUERY = """select order_id, order_date, amount, status, note from shop.orders
               where order_date = '{day}' order by order_id"""


@pytest.fixture(scope="module")
def _source_db(pg_server):
    """A second database on the server: the source the queries run on."""
    with scratch_database(pg_server, "src") as uri:
        yield uri


@pytest.fixture
def src_uri(_source_db):
    with psycopg.connect(_source_db, autocommit=True) as conn:
        conn.execute("drop schema if exists shop cascade")
        conn.execute(SOURCE)
    return _source_db


def loader(uri, day, run_key="r", **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table="public.orders", partition_column="order_date",
                           partition_value=day, run_key=run_key, **kw)


def query(src_uri, text):
    return QuerySource.from_conninfo(src_uri, text)


@pytest.mark.parametrize(("ddl", "strategy"), [
    pytest.param(PLAIN, "delete_insert", id="plain"),
    pytest.param(NATIVE, "delete_insert", id="native-delete-insert"),
    pytest.param(NATIVE, "swap", id="native-swap"),
])
def test_query_source_three_times_is_idempotent(pg, pg_uri, src_uri, ddl, strategy):
    pg.execute(ddl)
    loader(pg_uri, "2024-05-01", publish_strategy=strategy).run(query(src_uri, DAY_QUERY.format(day="2024-05-01")))
    neighbour = partition_checksum(pg, "public.orders", "order_date", "2024-05-01")
    expected = psycopg.connect(src_uri).execute("select count(*) from shop.orders where order_date = '2024-05-02'"
                                                ).fetchone()[0]
    sums, staged = [], []
    for attempt in range(3):
        r = loader(pg_uri, "2024-05-02", run_key=f"q{attempt}", publish_strategy=strategy).run(
            query(src_uri, DAY_QUERY.format(day="2024-05-02")))
        assert (r.rows, r.rows_quarantined, r.rows_source) == (expected, 0, expected)
        sums.append(partition_checksum(pg, "public.orders", "order_date", "2024-05-02"))
        staged.append(r.checksum)
    assert sums[0] == sums[1] == sums[2] and sums[0][0] == expected == 1000
    # the checksum recorded at stage is the published partition's, computed the same way
    assert staged == [sums[0][1]] * 3
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-01") == neighbour
    history = pg.execute("select status, rows_loaded, checksum, source from safeload.load_history "
                         "where partition_value = '2024-05-02' order by id").fetchall()
    assert [(s, n, c) for s, n, c, _ in history] == [("published", 1000, sums[0][1])] * 3
    assert history[0][3].startswith("postgresql://") and "query: select order_id" in history[0][3]
    # NULL and '' arrive as they were in the source (a file would read both as NULL)
    notes = dict(pg.execute("select order_id, note from public.orders where order_id in (10, 28, 25, 4)"
                            ).fetchall())
    assert notes == {10: "", 28: None, 25: "", 4: "n4"}
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0


def test_file_and_query_of_the_same_rows_give_the_same_checksum(pg, pg_uri, src_uri, tmp_path):
    """The checksum is of the published rows, not of how they arrived."""
    pg.execute(PLAIN)
    via_query = loader(pg_uri, "2024-05-02", run_key="q").run(query(
        src_uri, "select order_id, order_date, amount, status, coalesce(note, 'x') as note from shop.orders "
                 "where order_date = '2024-05-02'"))
    with psycopg.connect(src_uri) as s, open(tmp_path / "d.csv", "wb") as fh:
        with s.cursor().copy("copy (select order_id, order_date, amount, status, coalesce(note, 'x') as note "
                             "from shop.orders where order_date = '2024-05-02' order by order_id desc) "
                             "to stdout (format csv, header true)") as out:
            for block in out:
                fh.write(block)
    via_file = loader(pg_uri, "2024-05-02", run_key="f").run(tmp_path / "d.csv")
    assert via_query.checksum == via_file.checksum
    assert via_query.rows == via_file.rows == 1000


def test_partition_column_missing_from_the_result_is_the_partition_value(pg, pg_uri, src_uri):
    pg.execute(PLAIN)
    r = loader(pg_uri, "2024-05-03").run(query(
        src_uri, "select order_id, amount, status from shop.orders where order_id <= 10;  "))
    assert r.rows == 10
    assert pg.execute("select distinct order_date::text from public.orders").fetchall() == [("2024-05-03",)]


def test_empty_result_is_refused_and_deletes_nothing(pg, pg_uri, src_uri):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(query(src_uri, DAY_QUERY.format(day="2024-05-02")))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    empty = DAY_QUERY.format(day="2024-05-02").replace("order by", "and false order by")
    with pytest.raises(LoadRefusedError, match=r"returned no rows: refusing to replace partition 2024-05-02"):
        loader(pg_uri, "2024-05-02", run_key="e").run(query(src_uri, empty))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select status from safeload.load_history order by id desc limit 1").fetchone()[0] == "refused"
    # explicitly allowed: the partition is replaced with nothing
    r = loader(pg_uri, "2024-05-02", run_key="e2", allow_empty=True).run(query(src_uri, empty))
    assert (r.rows, r.rows_replaced) == (0, 1000)


@pytest.mark.parametrize(("text", "match"), [
    pytest.param("select order_id, order_date frm shop.orders", r"query failed: syntax error", id="syntax"),
    pytest.param("select * from shop.missing", r'relation "shop.missing" does not exist', id="missing-table"),
    # fails after rows have streamed: the COPY into staging is aborted with it
    # ~150k rows (several 1 MiB blocks) reach the staging COPY before the error
    pytest.param("select i as order_id, date '2024-05-02' as order_date, 1.0 / (i - 150000) as amount, "
                 "'paid' as status from generate_series(1, 200000) i",
                 r"division by zero", id="mid-stream"),
    pytest.param("delete from shop.orders returning *", r"query failed", id="not-read-only"),
    pytest.param("select order_id, order_id from shop.orders", r"two columns named 'order_id'", id="duplicate"),
    pytest.param(" ; ", r"the source query is empty", id="empty-text"),
])
def test_a_query_error_leaves_the_target_unchanged(pg, pg_uri, src_uri, text, match):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(query(src_uri, DAY_QUERY.format(day="2024-05-02")))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    with pytest.raises(SourceError, match=match) as exc:
        loader(pg_uri, "2024-05-02", run_key="bad").run(query(src_uri, text))
    assert not exc.value.retryable  # a bad query is not fixed by a retry
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone()[0] == 0
    assert pg.execute("select count(*) from safeload.staging").fetchone()[0] == 0
    # the source was only read
    assert psycopg.connect(src_uri).execute("select count(*) from shop.orders").fetchone()[0] == 3000


def test_secrets_are_not_echoed(pg, pg_uri, src_uri):
    pg.execute(PLAIN)
    # an unreachable source: retryable, names the server, never the password
    down = QuerySource.from_conninfo("postgresql://reader:s3cret-pw@127.0.0.1:1/shop?connect_timeout=5", "select 1")
    with pytest.raises(SourceUnavailableError, match=r"postgresql://reader@127.0.0.1:1/shop") as exc:
        loader(pg_uri, "2024-05-02").run(down)
    assert exc.value.retryable and "s3cret-pw" not in str(exc.value)
    # a reachable one (this server trusts local connections, so a password is accepted and
    # ignored): neither the error of a bad query nor the history row holds the password
    with_pw = src_uri.replace("postgresql://postgres@", "postgresql://postgres:s3cret-pw@")
    assert with_pw != src_uri
    with pytest.raises(SourceError) as exc:
        loader(pg_uri, "2024-05-02", run_key="x").run(QuerySource.from_conninfo(with_pw, "select nope"))
    assert "s3cret-pw" not in str(exc.value) and 'column "nope" does not exist' in str(exc.value)
    loader(pg_uri, "2024-05-02", run_key="y").run(QuerySource.from_conninfo(with_pw, DAY_QUERY.format(day="2024-05-02")))
    sources = [r[0] for r in pg.execute("select source from safeload.load_history").fetchall()]
    assert sources and not any("s3cret" in s for s in sources)


def test_values_that_do_not_fit_the_target_are_quarantined(pg, pg_uri, src_uri):
    """A typed result has no malformed text, but a value can still not fit the target:
    too large for numeric(12,2), NULL for a NOT NULL column, a row of another partition.
    Those rows go to quarantine with their result row number and the row as JSON."""
    pg.execute(PLAIN)
    with psycopg.connect(src_uri, autocommit=True) as s:
        s.execute("update shop.orders set amount = 1e11 where order_id = 5")  # numeric(12,2) holds < 1e10
        s.execute("update shop.orders set status = null where order_id = 8")
    text = ("select order_id, case when order_id = 11 then date '2024-05-01' else date '2024-05-02' end as order_date, "
            "amount, status, note from shop.orders where order_id <= 20 order by order_id")
    r = loader(pg_uri, "2024-05-02", run_key="qq", max_bad_rows=3).run(query(src_uri, text))
    assert (r.rows_source, r.rows, r.rows_quarantined) == (20, 17, 3)
    rows = pg.execute("select line, raw, reason from safeload.quarantine where run_key = 'qq' order by line").fetchall()
    assert [line for line, _, _ in rows] == [5, 8, 11]
    assert "column 'amount'" in rows[0][2] and "numeric(12,2)" in rows[0][2]
    assert '"order_id": "5"' in rows[0][1]
    assert "NOT NULL" in rows[1][2]
    assert "belongs to another partition" in rows[2][2]
    # '' stayed '' on the checked path too (order_id 10: note = '')
    assert pg.execute("select note from public.orders where order_id = 10").fetchone()[0] == ""
    # over the threshold: refused, nothing published
    with pytest.raises(LoadRefusedError, match=r"3 of 20 row\(s\) are malformed"):
        loader(pg_uri, "2024-05-02", run_key="qq2", max_bad_rows=2).run(query(src_uri, text))
    assert pg.execute("select count(*) from public.orders").fetchone()[0] == 17


@pytest.fixture
def airflow_env(pg_uri, src_uri, monkeypatch, airflow_db):
    """Airflow's metadata DB (the session's) and the two connections, from the environment."""
    monkeypatch.setenv("AIRFLOW_CONN_WAREHOUSE", pg_uri)
    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", src_uri)


DAG_FILE = """
import pendulum
from airflow.sdk import DAG

from safeload.operators.load import PublishPartitionOperator, StagePartitionOperator

with DAG("query_source_ops", schedule="@daily", start_date=pendulum.datetime(2024, 5, 1, tz="UTC"),
         catchup=False, template_searchpath=[{folder!r}]) as dag:
    stage = StagePartitionOperator(task_id="stage", table="public.orders", partition_column="order_date",
                                   source_conn_id="shop_db", source_sql="orders_day.sql")
    publish = PublishPartitionOperator(task_id="publish", table="public.orders", partition_column="order_date",
                                       stage_task_id="stage")
    stage >> publish
"""


def test_operators_load_a_templated_sql_file(pg, pg_uri, src_uri, airflow_env, tmp_path, monkeypatch):
    """StagePartitionOperator(source_conn_id=, source_sql="file.sql") >> PublishPartitionOperator under
    dag.test(): the .sql file is rendered with the run's dates, twice gives the same partition."""
    import pendulum
    from dagrun import dag_from_file

    pg.execute(NATIVE)
    (tmp_path / "orders_day.sql").write_text(
        "select order_id, order_date, amount, status, note from shop.orders\n"
        "where order_date >= '{{ ds }}' and order_date < '{{ macros.ds_add(ds, 1) }}'\n")
    dag = dag_from_file(tmp_path, monkeypatch, "query_source_dag", DAG_FILE.format(folder=str(tmp_path)))
    sums = []
    for _ in range(2):
        dr = dag.test(logical_date=pendulum.datetime(2024, 5, 2, tz="UTC"))
        assert dr.state == "success", {ti.task_id: ti.state for ti in dr.get_task_instances()}
        sums.append(partition_checksum(pg, "public.orders", "order_date", "2024-05-02"))
    assert sums[0] == sums[1] and sums[0][0] == 1000
    source = pg.execute("select source from safeload.load_history order by id desc limit 1").fetchone()[0]
    assert "order_date >= '2024-05-02' and order_date < '2024-05-03'" in source


def test_a_read_stopped_early_leaves_the_snapshot_usable(src_uri):
    """When the target refuses a value mid-stream, the reader stops; the checked re-read
    must still work, in the same snapshot (rows inserted meanwhile are not seen)."""
    with QuerySource.from_conninfo(src_uri, "select order_id from shop.orders, generate_series(1, 100)") as src:
        assert src.columns() == ["order_id"]
        blocks = src.blocks(size=1 << 16)
        assert len(next(blocks)) >= 1 << 16
        blocks.close()  # 300k rows, most unread
        with psycopg.connect(src_uri, autocommit=True) as other:
            other.execute("insert into shop.orders (order_id) values (-1)")
        assert sum(1 for _ in src.rows(["order_id"])) == 300_000


ORDERS_COLUMNS = [{"name": "order_id", "type": "bigint"}, {"name": "order_date", "type": "date"},
                  {"name": "amount", "type": "numeric(12,2)"}, {"name": "status", "type": "text"}]
NEW_COLUMN_QUERY = ("select order_id, order_date, amount, status, internal_flag "
                    "from shop.orders where order_date = '2024-05-02'")


def evolving_stage(monkeypatch, src_uri, source_sql, columns=ORDERS_COLUMNS):
    """A StagePartitionOperator reading ``source_sql`` from the source database, under a
    contract with ``columns`` and schema_policy evolve."""
    from safeload.contracts.model import parse_contract
    from safeload.operators.load import StagePartitionOperator

    monkeypatch.setenv("AIRFLOW_CONN_SHOP_DB", src_uri)
    op = StagePartitionOperator(task_id="stage", table="public.orders", partition_column="order_date",
                                source_conn_id="shop_db", source_sql=source_sql)
    op._contract = parse_contract({"dataset": "orders", "schema_policy": "evolve", "columns": columns})
    return op


def test_evolve_reads_new_columns_from_the_query_result(pg, pg_uri, src_uri, monkeypatch):
    """Under a contract's schema_policy: evolve, the operator takes the columns to add from
    the query's result (names and types, from the source database)."""
    pg.execute(PLAIN)
    op = evolving_stage(monkeypatch, src_uri, NEW_COLUMN_QUERY)
    ld = loader(pg_uri, "2024-05-02")
    op._evolve(ld)
    assert ld.add_columns == [("internal_flag", "boolean")]
    r = ld.run(op._source())
    assert r.added_columns == ["internal_flag"]
    assert pg.execute("select count(*) filter (where internal_flag), count(*) from public.orders").fetchone() == (
        91, 1000)


def test_a_second_statement_hidden_in_the_query_never_runs(pg, pg_uri, src_uri):
    """The source transaction is read only, but a COMMIT inside the query text would end it:
    the query must be refused as more than one statement before anything of it runs."""
    pg.execute(PLAIN)
    text = ("select 1::bigint as order_id, date '2024-05-02' as order_date, 1 as amount, 'x' as status) s; "
            "commit; drop table shop.orders; select * from (select 1 as order_id")
    with pytest.raises(SourceError, match=r"one statement") as exc:
        loader(pg_uri, "2024-05-02").run(query(src_uri, text))
    assert not exc.value.retryable
    with psycopg.connect(src_uri) as conn:
        assert conn.execute("select count(*) from shop.orders").fetchone()[0] == 3000


@pytest.mark.parametrize("tail", ["\n-- the end", "; -- the end", ";\n-- the end\n", ";;\n/* done */ ;\n"])
def test_evolve_and_stage_accept_a_trailing_semicolon_or_comment(pg, pg_uri, src_uri, monkeypatch, tail):
    """A templated .sql file often ends in ``;`` and a comment: the column look-up of
    schema_policy evolve and the stage both read the same query."""
    pg.execute(PLAIN)
    op = evolving_stage(monkeypatch, src_uri, NEW_COLUMN_QUERY + tail)
    ld = loader(pg_uri, "2024-05-02")
    op._evolve(ld)
    assert ld.add_columns == [("internal_flag", "boolean")]
    assert ld.run(op._source()).rows == 1000


def test_a_result_of_a_type_without_binary_output_loads(pg, pg_uri, src_uri):
    """The one-statement check must not need binary output (aclitem has none)."""
    pg.execute(PLAIN)
    text = ("select 1 as order_id, date '2024-05-02' as order_date, 1 as amount, 'x' as status, "
            "'=r/postgres'::aclitem as note")
    assert loader(pg_uri, "2024-05-02").run(query(src_uri, text)).rows == 1


def test_evolve_runs_no_second_statement_of_the_query(pg, pg_uri, src_uri, monkeypatch):
    pg.execute(PLAIN)
    op = evolving_stage(monkeypatch, src_uri, "select 1 as order_id) s; drop table shop.orders; "
                                              "select * from (select 1 as order_id",
                        columns=[{"name": "order_id", "type": "bigint"}])
    with pytest.raises(SourceError, match=r"one statement"):
        op._evolve(loader(pg_uri, "2024-05-02"))
    with psycopg.connect(src_uri) as conn:
        assert conn.execute("select count(*) from shop.orders").fetchone()[0] == 3000


def test_the_source_sessions_date_and_float_styles_do_not_change_values(pg, pg_uri, pg_server):
    """The result travels as text: a source database set to DateStyle 'SQL, DMY' prints
    2024-05-03 as 03/05/2024, which a warehouse in MDY reads as March 5th, and
    extra_float_digits = 0 rounds doubles to 15 digits. The source session prints ISO
    dates and exact floats whatever its database's settings."""
    pg.execute("create table public.ships (id int not null, day date not null, shipped date, x float8, "
               "at timestamp)")
    with scratch_database(pg_server, "dmy") as src:
        with psycopg.connect(src, autocommit=True) as s:
            s.execute(f"""alter database "{src.rsplit('/', 1)[1]}" set datestyle = 'SQL, DMY'""")
            s.execute(f"""alter database "{src.rsplit('/', 1)[1]}" set extra_float_digits = 0""")
        text = ("select 1 as id, date '2024-05-02' as day, date '2024-05-03' as shipped, 0.1::float8 + 0.2 as x, "
                "timestamp '2024-05-03 04:05:06.5' as at")
        PartitionLoader(lambda: psycopg.connect(pg_uri), table="public.ships", partition_column="day",
                        partition_value="2024-05-02", run_key="dmy").run(QuerySource.from_conninfo(src, text))
    row = pg.execute("select shipped, x, at from public.ships").fetchone()
    import datetime as dt
    assert row == (dt.date(2024, 5, 3), 0.1 + 0.2, dt.datetime(2024, 5, 3, 4, 5, 6, 500000))
