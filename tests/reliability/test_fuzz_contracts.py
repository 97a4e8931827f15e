"""Fuzzing contract files: random mutations of a valid contract either parse or raise a
:class:`ContractError` that names the file and the field, never another exception.

Two kinds of mutation, both drawn by hypothesis from the reference contract
(include/contracts/orders.yaml):

* structural: a value anywhere in the document is replaced by another YAML value
  (None, booleans, huge integers, NaN, dates, lists, mappings with non-string keys,
  strings with quotes and unicode), a key is deleted, or a key is added;
* textual: bytes of the YAML text are replaced, deleted or inserted (broken
  indentation, unclosed quotes, tabs, invalid UTF-8).

A contract that parses must also be usable downstream without a crash: the quality
suite derived from it (``build_suite``) and a contract check of a small CSV either work
or raise a :class:`SafeloadError`.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from reliability.figures import FULL, record, trials
from safeload.contracts.check import check_source
from safeload.contracts.model import Contract
from safeload.contracts.files import load_contract
from safeload.errors import ContractError, SafeloadError
from safeload.quality.suite import build_suite

ROOT = Path(__file__).resolve().parents[2]
REFERENCE = ROOT / "include" / "contracts" / "orders.yaml"
BASE = yaml.safe_load(REFERENCE.read_text())
TEXT = REFERENCE.read_bytes()

CSV = (
    "order_id,order_date,customer_id,amount,currency,status,created_at\n"
    "1,2024-05-02,7,10.50,EUR,placed,2024-05-02T10:00:00+00:00\n"
)

N = trials(fast=150, full=3000)
FUZZ = settings(max_examples=N, deadline=None, derandomize=not FULL,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

scalars = st.one_of(
    st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True), st.dates(),
    st.text(alphabet=st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
    st.sampled_from(["bigint", "numeric(12,2)", "numeric(0,5)", "varchar(-1)", "text[]", "date;drop table x",
                     "order_id", "fail", "evolve", "warn", "'", '"', "a b", "é", "x" * 70, "select",
                     "public.orders", "a.b.c", "", " ", "true", "~", "null"]),
)
keys = st.one_of(st.sampled_from(["name", "type", "nullable", "primary_key", "unique", "allowed_values", "min",
                                  "max", "pattern", "mostly", "dataset", "columns", "target", "table",
                                  "partition_column", "schema_policy", "bogus"]),
                 st.integers(-3, 3), st.booleans(), st.none(), st.floats(allow_nan=False), st.dates())
values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(keys, inner, max_size=4)), max_leaves=8)


def _paths(node, prefix=()):
    """Every place in the document a mutation can touch."""
    yield prefix
    if isinstance(node, dict):
        for k, v in node.items():
            yield from _paths(v, (*prefix, k))
    elif isinstance(node, list):
        for i, v in enumerate(node):
            yield from _paths(v, (*prefix, i))


def _mutate(doc, data):
    import copy

    doc = copy.deepcopy(doc)
    for _ in range(data.draw(st.integers(1, 3), label="mutations")):
        paths = list(_paths(doc))
        path = data.draw(st.sampled_from(paths), label="path")
        op = data.draw(st.sampled_from(["replace", "delete", "add"]), label="op")
        if not path:
            if op == "replace":
                doc = data.draw(values, label="document")
            continue
        parent = doc
        for p in path[:-1]:
            parent = parent[p]
        last = path[-1]
        if op == "replace":
            parent[last] = data.draw(values, label="value")
        elif op == "delete":
            del parent[last]
        elif isinstance(parent, dict):
            parent[data.draw(keys, label="key")] = data.draw(values, label="value")
        else:
            parent.insert(last, data.draw(values, label="value"))
    return doc


def _check(path: Path, tmp: Path) -> str:
    """Parse the contract; if it parses, use it downstream. Returns the outcome."""
    try:
        contract = load_contract(path)
    except ContractError as e:
        msg = str(e)
        assert msg.startswith(str(path)), f"the error does not name the file: {msg}"
        assert len(msg) > len(str(path)) + 10, f"the error names no field or rule: {msg}"
        return "refused"
    assert isinstance(contract, Contract)
    try:
        build_suite(contract_path=contract)
    except SafeloadError:
        pass
    src = tmp / "orders.csv"
    src.write_text(CSV)
    try:
        check_source(contract, str(src))
    except SafeloadError:
        pass
    return "parsed"


OUTCOMES: dict[str, dict[str, int]] = {"structural": {}, "textual": {}}


@FUZZ
@given(data=st.data())
def test_structural_mutations_parse_or_name_the_field(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    doc = _mutate(BASE, data)
    path = tmp / "orders.yaml"
    try:
        path.write_text(yaml.safe_dump(doc, allow_unicode=True, sort_keys=False))
    except (yaml.YAMLError, ValueError):  # not representable (e.g. a lone surrogate): nothing to test
        return
    outcome = _check(path, tmp)
    OUTCOMES["structural"][outcome] = OUTCOMES["structural"].get(outcome, 0) + 1


@FUZZ
@given(data=st.data())
def test_textual_mutations_parse_or_name_the_line(data, tmp_path_factory):
    tmp = tmp_path_factory.mktemp("contract")
    text = bytearray(TEXT)
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        pos = data.draw(st.integers(0, len(text)), label="pos")
        op = data.draw(st.sampled_from(["replace", "delete", "insert"]), label="op")
        junk = data.draw(st.sampled_from([b":", b"-", b" ", b"\t", b"\n", b"'", b'"', b"[", b"{", b"}", b"&a",
                                          b"*a", b"!!python/object:os.system", b"\xff", b"\x00", b"\xc3", b"#",
                                          b"? [a, b]\n", b"<<: *x\n", b"%YAML 9\n"]), label="junk")
        if op == "replace":
            text[pos:pos + len(junk)] = junk
        elif op == "delete":
            del text[pos:pos + data.draw(st.integers(1, 20), label="n")]
        else:
            text[pos:pos] = junk
    path = tmp / "orders.yaml"
    path.write_bytes(bytes(text))
    outcome = _check(path, tmp)
    OUTCOMES["textual"][outcome] = OUTCOMES["textual"].get(outcome, 0) + 1


def test_record_contract_figures():
    """One figures line for both fuzzers (runs after them: pytest keeps file order)."""
    done = {k: sum(v.values()) for k, v in OUTCOMES.items()}
    if not all(done.values()):
        pytest.skip("the fuzz tests above did not run")
    refused = sum(v.get("refused", 0) for v in OUTCOMES.values())
    parsed = sum(v.get("parsed", 0) for v in OUTCOMES.values())
    assert refused and parsed, f"the mutations should produce both outcomes: {OUTCOMES}"
    record("fuzz: contract files (mutated YAML)", trials=sum(done.values()), faults=refused,
           held=f"{parsed} parsed and usable, {refused} ContractError naming file and field; no other exception")


def test_reference_contract_is_valid():
    assert load_contract(REFERENCE).dataset == "orders"
