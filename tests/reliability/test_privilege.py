"""Least privilege: the loader, the quality gate and the contract check run end to end as
a role without superuser that has exactly the grants of docs/security.md (the SQL blocks
of that page are run verbatim, names substituted), and a missing grant fails with an
error naming it, the target unchanged.
"""

from __future__ import annotations

import re
import uuid
from pathlib import Path

import psycopg
import pytest

from reliability.figures import record
from safeload.contracts.check import check_source
from safeload.contracts.model import parse_contract
from safeload.loads.loader import PartitionLoader
from safeload.metadata import DDL
from safeload.loads.privileges import PrivilegeError
from safeload.loads.sql import partition_checksum
from safeload.quality.gate import run_gate

ROOT = Path(__file__).resolve().parents[2]
DOC = (ROOT / "docs" / "security.md").read_text()
BLOCKS = dict(re.findall(r"```sql\n-- safeload-grants: ([\w-]+)\n(.*?)```", DOC, flags=re.S))
PLAIN = "create table public.orders (order_id bigint not null, order_date date not null, amount numeric(12,2))"
NATIVE = PLAIN + " partition by range (order_date)"
CONTRACT = parse_contract({"dataset": "orders", "target": {"table": "public.orders", "partition_column": "order_date"},
                           "columns": [{"name": "order_id", "type": "bigint", "nullable": False},
                                       {"name": "order_date", "type": "date", "nullable": False},
                                       {"name": "amount", "type": "numeric(12,2)", "min": 0}]})
SUITE = [{"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "order_id"}},
         {"type": "expect_column_values_to_be_between", "kwargs": {"column": "amount", "min_value": 0}}]
RESULTS: dict[str, int] = {"runs": 0, "refusals": 0}


def write_csv(path, day, n, extra=False):
    lines = ["order_id,order_date,amount" + (",coupon" if extra else "")]
    lines += [f"{i},{day},{i}.50" + (",X" if extra else "") for i in range(1, n + 1)]
    path.write_text("\n".join(lines) + "\n")
    return str(path)


@pytest.fixture
def roles(pg, pg_uri):
    """A login role and the target's owner role, both without superuser; dropped afterwards."""
    suffix = uuid.uuid4().hex[:8]
    loader_role, owner = f"loader_{suffix}", f"orders_owner_{suffix}"
    db = pg_uri.rsplit("/", 1)[1]
    pg.execute(f"create role {owner} nologin")

    def grant(*names: str) -> None:
        for name in names:
            text = BLOCKS[name].replace("safeload_loader", loader_role).replace("orders_owner", owner)
            text = re.sub(r"\bwarehouse\b", f'"{db}"', text)
            pg.execute(text)

    grant("login")
    uri = pg_uri.replace("postgres@", f"{loader_role}@", 1)
    assert not pg.execute("select rolsuper or rolcreatedb or rolcreaterole from pg_roles where rolname = %s",
                          (loader_role,)).fetchone()[0]
    try:
        yield {"loader": loader_role, "owner": owner, "uri": uri, "grant": grant}
    finally:
        for role in (loader_role, owner):
            pg.execute(f"drop owned by {role} cascade")
            pg.execute(f"drop role {role}")


def _make_target(pg, ddl, owner):
    pg.execute(ddl)
    pg.execute(f"alter table public.orders owner to {owner}")


def _loader(uri, day, **kw):
    return PartitionLoader(lambda: psycopg.connect(uri), table="public.orders", partition_column="order_date",
                           partition_value=day, run_key=f"priv-{day}", **kw)


def _end_to_end(uri, tmp_path, day, **kw):
    """Contract check (a table source), stage, quality gate on staging, publish: as the role."""
    with psycopg.connect(uri, autocommit=True) as c:
        report = check_source(CONTRACT, conn=c, table="public.orders")
    assert report.passed, report.summary()
    ld = _loader(uri, day, **kw)
    staged = ld.stage(write_csv(tmp_path / f"{day}.csv", day, 20, extra=bool(kw.get("add_columns"))))
    gate = run_gate(uri, table=f"safeload_staging.{staged.staging_table}", suite=SUITE,
                    store={"target": staged.target, "partition_value": day, "run_key": staged.run_key})
    assert gate.success
    result = ld.publish(staged)
    RESULTS["runs"] += 1
    return result


@pytest.mark.parametrize("metadata", ["precreated", "by-loader"])
def test_delete_insert_as_least_privileged_role(pg, pg_uri, roles, tmp_path, metadata):
    _make_target(pg, PLAIN, roles["owner"])
    if metadata == "precreated":
        pg.execute(DDL)
        roles["grant"]("metadata-precreated", "target-delete-insert")
    else:
        roles["grant"]("metadata-by-loader", "target-delete-insert")
    pg.execute("insert into public.orders values (99, '2024-05-01', 1)")  # so the contract check scans a row
    for attempt in range(2):  # a re-run replaces, as the same role
        r = _end_to_end(roles["uri"], tmp_path, "2024-05-02")
        assert (r.rows, r.rows_replaced) == (20, 20 * attempt)
    assert pg.execute("select count(*) from safeload.quality_results").fetchone()[0] > 0
    owners = {r[0] for r in pg.execute("select pg_get_userbyid(relowner) from pg_class c join pg_namespace n "
                                       "on n.oid = c.relnamespace where n.nspname = 'safeload'").fetchall()}
    assert owners == ({"postgres"} if metadata == "precreated" else {roles["loader"]})


@pytest.mark.parametrize("streams", [1, 2])
def test_a_direct_load_as_least_privileged_role(pg, pg_uri, roles, tmp_path, streams):
    """A plain table loaded as one unit: straight into the target, and in two streams with a
    helper's side table in safeload_staging, on the same grants as a staged load."""
    _make_target(pg, PLAIN, roles["owner"])
    pg.execute(DDL)
    roles["grant"]("metadata-precreated", "target-delete-insert")
    for attempt in range(2):  # a re-run replaces, as the same role
        r = _loader(roles["uri"], "2024-05-02", parallel=streams).run(
            write_csv(tmp_path / "a.csv", "2024-05-02", 3000))
        assert (r.rows, r.rows_replaced, r.published_by) == (3000, 3000 * attempt, "direct")
    assert pg.execute("select count(*) from pg_tables where schemaname = 'safeload_staging'").fetchone() == (0,)


@pytest.mark.parametrize("strategy", ["delete_insert", "swap"])
def test_native_partitions_swap_and_evolve_need_owner_membership(pg, pg_uri, roles, tmp_path, strategy):
    _make_target(pg, NATIVE, roles["owner"])
    pg.execute(DDL)
    roles["grant"]("metadata-precreated", "target-delete-insert", "target-owner")
    pg.execute("create table public.orders_p1 partition of public.orders for values from ('2024-05-01') "
               "to ('2024-05-02')")
    pg.execute(f"alter table public.orders_p1 owner to {roles['owner']}")
    pg.execute("insert into public.orders values (99, '2024-05-01', 1)")
    r = _end_to_end(roles["uri"], tmp_path, "2024-05-02", publish_strategy=strategy)  # a new partition
    assert r.rows == 20
    r = _end_to_end(roles["uri"], tmp_path, "2024-05-01", publish_strategy=strategy,  # the owner's partition
                    add_columns=[("coupon", "text")])
    assert (r.rows, r.added_columns) == (20, ["coupon"])
    assert pg.execute("select count(*) from public.orders where coupon = 'X'").fetchone()[0] == 20


def test_missing_delete_grant_is_named_and_target_unchanged(pg, pg_uri, roles, tmp_path):
    _make_target(pg, PLAIN, roles["owner"])
    pg.execute(DDL)
    roles["grant"]("metadata-precreated", "target-delete-insert")
    _loader(roles["uri"], "2024-05-02").run(write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    pg.execute(f"revoke delete on public.orders from {roles['loader']}")
    with pytest.raises(PrivilegeError, match=rf"permission denied for table orders, so nothing was changed\. "
                                             rf"Role {roles['loader']} lacks: DELETE on public\.orders\. "
                                             rf'Grant it: GRANT DELETE ON "public"\."orders" TO {roles["loader"]};'):
        _loader(roles["uri"], "2024-05-02").run(write_csv(tmp_path / "b.csv", "2024-05-02", 7))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    RESULTS["refusals"] += 1


def test_swap_without_owner_membership_is_named(pg, pg_uri, roles, tmp_path):
    _make_target(pg, NATIVE, roles["owner"])
    pg.execute(DDL)
    roles["grant"]("metadata-precreated", "target-delete-insert")
    pg.execute("create table public.orders_p2 partition of public.orders for values from ('2024-05-02') "
               "to ('2024-05-03')")
    pg.execute(f"alter table public.orders_p2 owner to {roles['owner']}")
    pg.execute("insert into public.orders select g, '2024-05-02', 1 from generate_series(1, 3) g")
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    with pytest.raises(PrivilegeError, match=rf"lacks: membership in {roles['owner']}, the owner of public\.orders "
                                             rf"\(swap publishes by DETACH/ATTACH.*GRANT \"{roles['owner']}\" TO"):
        _loader(roles["uri"], "2024-05-02", publish_strategy="swap").run(
            write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before
    # delete_insert into the existing partition needs no ownership
    r = _loader(roles["uri"], "2024-05-02").run(write_csv(tmp_path / "b.csv", "2024-05-02", 5))
    assert r.rows == 5
    RESULTS["refusals"] += 1


def test_no_metadata_and_no_create_on_database_is_named(pg, pg_uri, roles, tmp_path):
    _make_target(pg, PLAIN, roles["owner"])
    roles["grant"]("target-delete-insert")
    pg.execute("revoke create on schema public from public")
    with pytest.raises(PrivilegeError, match=r"lacks: CREATE on the database .*GRANT CREATE ON DATABASE"):
        _loader(roles["uri"], "2024-05-02").run(write_csv(tmp_path / "a.csv", "2024-05-02", 5))
    assert pg.execute("select count(*) from public.orders").fetchone()[0] == 0
    assert pg.execute("select to_regnamespace('safeload') is null").fetchone()[0]
    RESULTS["refusals"] += 1


def test_record_privilege_figures():
    if not RESULTS["runs"]:
        pytest.skip("the tests above did not run")
    record("least privilege (non-superuser role)", trials=RESULTS["runs"], faults=RESULTS["refusals"],
           held=f"{RESULTS['runs']} contract check + stage + gate + publish runs with exactly docs/security.md's "
                f"grants; {RESULTS['refusals']} missing grants named with their GRANT, target unchanged")
