"""The contract's value rules on a PostgreSQL table and query: counted by the server, with
the first offending rows, the same findings as on a file of the same rows."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from safeload.contracts.check import check_source
from safeload.contracts.model import parse_contract

ROOT = Path(__file__).resolve().parents[3]
CONTRACT = parse_contract({"dataset": "items", "columns": [
    {"name": "id", "type": "bigint", "primary_key": True},
    {"name": "amount", "type": "numeric(10,2)", "min": 0, "max": 100},
    {"name": "cur", "type": "text", "allowed_values": ["EUR", "USD"], "nullable": False, "pattern": "^[A-Z]{3}$"},
]}, source="items.yaml")
ROWS = [(1, "5.00", "EUR"), (2, "-1.00", "USD"), (2, "500.00", "GBP"), (4, "7.50", None), (5, "100.00", "usd")]
EXPECTED = [("columns[0].primary_key", 1), ("columns[1].max", 1), ("columns[1].min", 1),
            ("columns[2].allowed_values", 2), ("columns[2].nullable", 1), ("columns[2].pattern", 1)]


@pytest.fixture
def items(pg):
    pg.execute("create table public.items (id bigint, amount numeric(10,2), cur text)")
    with pg.cursor() as cur:
        cur.executemany("insert into public.items values (%s, %s, %s)", ROWS)
    return pg


def findings(report):
    return sorted((c.path, c.count) for c in report.changes if c.rule)


def test_table_query_and_csv_give_the_same_rule_findings(items, tmp_path):
    table = check_source(CONTRACT, conn=items, table="public.items")
    query = check_source(CONTRACT, conn=items, query="select id, amount, cur from public.items")
    csv = tmp_path / "items.csv"
    csv.write_text("id,amount,cur\n" + "".join(f"{i},{a},{c or ''}\n" for i, a, c in ROWS))
    from_file = check_source(CONTRACT, str(csv))
    assert findings(table) == findings(query) == findings(from_file) == EXPECTED
    assert table.decision == "fail" and table.rows_scanned == 5
    dup = next(c for c in table.changes if c.rule == "primary_key")
    assert dup.examples == [{"row": 3, "value": "2"}]  # row numbers of the query's result
    assert table.rules_count() == {"passed": 1, "broken": 6, "warning": 0, "not checked": 0}


def test_cli_checks_a_table_and_exits_1_naming_the_rule(items, pg_uri, tmp_path):
    contract = tmp_path / "items.yaml"
    contract.write_text("dataset: items\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n"
                        "  - {name: amount, type: 'numeric(10,2)', max: 100}\n  - {name: cur, type: text}\n")
    proc = subprocess.run([sys.executable, "-m", "safeload.cli", "contract", "check", str(contract),
                           "--source", f"{pg_uri}?table=public.items"], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1, proc.stderr
    assert "rule_broken 'id'" in proc.stdout and "columns[0].primary_key" in proc.stdout
    assert "rule_broken 'amount'" in proc.stdout and "row 3: '500.00'" in proc.stdout
