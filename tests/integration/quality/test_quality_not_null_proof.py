"""A column's NOT NULL lets the sql engine count its values with ``count(*)``, but only
where PostgreSQL enforces it on every row the scan reads: not an inheritance parent's
``NO INHERIT`` one, not a foreign table's, not a partitioned table's with a foreign
partition. There the engine counts the NULLs, as GX does."""

from __future__ import annotations

import pytest

from tests.integration.quality.test_quality_differential import compare
from tests.integration.quality.test_quality_unique_proof import sql_and_gx


def test_a_parents_no_inherit_not_null_does_not_count_its_childrens_nulls_away(pg, pg_uri):
    """PostgreSQL 18: a parent's NOT NULL ... NO INHERIT sets attnotnull on the parent while
    an inheritance child holds NULLs that the scan of the parent reads: count(id) is not
    count(*) there, and GX counts the NULLs."""
    if int(pg.execute("show server_version_num").fetchone()[0]) < 180000:
        pytest.skip("NOT NULL ... NO INHERIT is PostgreSQL 18's")
    pg.execute("""
        create table par (id int, v text);
        create table par_child () inherits (par);
        insert into par values (1, 'a'), (2, 'b');
        insert into par_child values (null, 'c'), (3, 'd');
        alter table only par add constraint par_id_nn not null id no inherit;
    """)
    exps = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    specs, res, gx = sql_and_gx(pg_uri, "par", exps)
    assert gx[0]["result"]["unexpected_count"] == 1
    problems = compare(specs, res, gx)
    assert not problems, "\n".join(problems)


@pytest.fixture
def files_server(pg):
    """A file_fdw server: foreign tables whose rows come from a program."""
    pg.execute("create extension file_fdw")
    pg.execute("create server files foreign data wrapper file_fdw")
    return pg


def _same_as_gx_with_one_null(pg_uri, table):
    exps = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "id"}}]
    specs, res, gx = sql_and_gx(pg_uri, table, exps)
    assert gx[0]["result"]["unexpected_count"] == 1
    problems = compare(specs, res, gx)
    assert not problems, "\n".join(problems)


def test_a_foreign_tables_not_null_is_not_trusted(files_server, pg_uri):
    """PostgreSQL does not enforce a foreign table's NOT NULL (the remote data is what it
    is): count(id) is not count(*) there either, and GX counts the NULLs."""
    pg = files_server
    # rows from a program: the server's OS user cannot read the test's temporary directory
    pg.execute("create foreign table remote (id int not null, v text) server files "
               "options (program 'echo 1,a; echo ,b; echo 3,c', format 'csv')")
    _same_as_gx_with_one_null(pg_uri, "remote")


def test_a_partitioned_tables_not_null_is_not_trusted_with_a_foreign_partition(files_server, pg_uri):
    """The same through a partitioned table: its NOT NULL binds its plain partitions, not
    a foreign one."""
    pg = files_server
    pg.execute("create table pt (id int not null, v text not null) partition by list (v)")
    pg.execute("create table pt_a partition of pt for values in ('a')")
    pg.execute("insert into pt values (1, 'a'), (2, 'a')")
    pg.execute("create foreign table pt_b partition of pt for values in ('b') server files "
               "options (program 'echo 3,b; echo ,b', format 'csv')")
    _same_as_gx_with_one_null(pg_uri, "pt")
