import pytest

from safeload.contracts.model import parse_contract
from safeload.contracts.files import load_contract
from safeload.errors import ContractError

GOOD = {
    "dataset": "orders",
    "version": "1.0.0",
    "target": {"table": "public.orders", "partition_column": "order_date"},
    "columns": [
        {"name": "order_id", "type": "bigint", "primary_key": True},
        {"name": "order_date", "type": "date", "nullable": False},
        {"name": "amount", "type": "numeric(12,2)", "min": 0, "max": 10},
    ],
}


def test_reference_contract_parses():
    c = load_contract("include/contracts/orders.yaml")
    assert c.dataset == "orders"
    assert c.partition_column == "order_date"
    assert c.primary_key == ["order_id"]
    assert c.column("amount").type.scale == 2
    assert not c.column("order_id").nullable


def test_primary_key_implies_not_null():
    c = parse_contract(GOOD)
    assert c.column("order_id").nullable is False
    assert c.column("amount").nullable is True


@pytest.mark.parametrize(
    ("mutate", "match"),
    [
        pytest.param(lambda d: d.pop("columns"), r"columns: required field is missing", id="no-columns"),
        pytest.param(lambda d: d.update(columns=[]), r"columns: must be a non-empty list", id="empty-columns"),
        pytest.param(lambda d: d.update(colums=[]), r"colums: unknown field", id="typo-top-level"),
        pytest.param(lambda d: d["columns"][0].update(type="bigitn"), r"columns\[0\] \(order_id\)\.type: 'bigitn' is not a supported",
                     id="bad-type"),
        pytest.param(lambda d: d["columns"][1].update(nullable="no"), r"columns\[1\] \(order_date\)\.nullable: must be true or false",
                     id="bad-bool"),
        pytest.param(lambda d: d["columns"].append({"name": "amount", "type": "text"}), r"declared twice", id="duplicate"),
        pytest.param(lambda d: d["columns"][2].update(min=11), r"min 11 is greater than max 10", id="min-gt-max"),
        pytest.param(lambda d: d["columns"][0].update(name="order id"), r"rename it to a plain identifier", id="bad-name"),
        pytest.param(lambda d: d["columns"][0].update(name="x" * 64), r"truncates names at 63 bytes", id="long-name"),
        pytest.param(lambda d: d["target"].update(partition_column="day"), r"target.partition_column: 'day' is not one of",
                     id="unknown-partition-column"),
        pytest.param(lambda d: d.update(schema_policy="ignore"), r"schema_policy: 'ignore' is not a policy", id="bad-policy"),
        pytest.param(lambda d: d["columns"][0].update(nullable=True), r"primary key column cannot be nullable", id="nullable-pk"),
        pytest.param(lambda d: d["columns"][0].update(colour="red"), r"columns\[0\] \(order_id\)\.colour: unknown column field",
                     id="unknown-column-field"),
        # found by tests/reliability/test_fuzz_contracts.py: each raised TypeError, not ContractError
        pytest.param(lambda d: d.update({1: "x"}), r"c.yaml: 1: unknown field", id="non-string-top-key"),
        pytest.param(lambda d: d["columns"][0].update({None: 1, 0: 2}), r"columns\[0\] \(order_id\)\.0: unknown column",
                     id="mixed-type-column-keys"),
        pytest.param(lambda d: d["target"].update(partition_column=[]), r"target.partition_column: \[\] is not one of",
                     id="list-partition-column"),
        pytest.param(lambda d: d["target"].update(table=True), r"target.table: must be a table name", id="bool-table"),
        pytest.param(lambda d: d["columns"][2].update(allowed_values=[{"a": 1, 0: 2}]),
                     r"allowed_values: must list plain values", id="mapping-in-allowed-values"),
        pytest.param(lambda d: d["columns"][2].update(min=[1]), r"\.min: must be a plain value", id="list-min"),
        pytest.param(lambda d: d["columns"][2].update(pattern=5), r"\.pattern: must be a regular expression",
                     id="non-string-pattern"),
    ],
)
def test_malformed_contract_names_field_and_fix(mutate, match):
    import copy

    doc = copy.deepcopy(GOOD)
    mutate(doc)
    with pytest.raises(ContractError, match=match):
        parse_contract(doc, source="c.yaml")


def test_yaml_syntax_error_names_line_and_column(tmp_path):
    p = tmp_path / "bad.yaml"
    p.write_text("dataset: orders\ncolumns:\n  - name: a\n    type: [bigint\n")
    with pytest.raises(ContractError, match=r"bad.yaml line \d+, column \d+: invalid YAML"):
        load_contract(p)


def test_missing_file(tmp_path):
    with pytest.raises(ContractError, match="contract file not found"):
        load_contract(tmp_path / "nope.yaml")
