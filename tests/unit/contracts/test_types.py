import pytest

from safeload.contracts.types import PgType, TypeSyntaxError, check_value, compare, parse_type


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        pytest.param("bigint", PgType("bigint"), id="bigint"),
        pytest.param("INT8", PgType("bigint"), id="alias-upper"),
        pytest.param("numeric(12, 2)", PgType("numeric", 12, 2), id="numeric-spaces"),
        pytest.param("numeric(5)", PgType("numeric", 5, 0), id="numeric-no-scale"),
        pytest.param("character varying(40)", PgType("varchar", 40), id="varchar-long-name"),
        pytest.param("timestamp with time zone", PgType("timestamptz"), id="timestamptz"),
        pytest.param("char", PgType("char", 1), id="char-default-1"),
    ],
)
def test_parse_type(text, expected):
    assert parse_type(text) == expected


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("money", "not a supported", id="unsupported"),
        pytest.param("integer(4)", "takes no length", id="int-length"),
        pytest.param("varchar(3,1)", "only numeric takes a scale", id="varchar-scale"),
        pytest.param("numeric(2,5)", "scale <= precision", id="scale-gt-precision"),
        pytest.param("big int;drop", "not a PostgreSQL type", id="garbage"),
    ],
)
def test_parse_type_errors(text, match):
    with pytest.raises(TypeSyntaxError, match=match):
        parse_type(text)


@pytest.mark.parametrize(
    ("old", "new", "how"),
    [
        ("integer", "bigint", "widened"),
        ("bigint", "integer", "narrowed"),
        ("varchar(10)", "varchar(20)", "widened"),
        ("varchar(20)", "varchar(10)", "narrowed"),
        ("varchar(20)", "text", "widened"),
        ("numeric(10,2)", "numeric(12,2)", "widened"),
        ("numeric(12,2)", "numeric(12,4)", "narrowed"),  # fewer integer digits
        ("numeric(12,2)", "numeric(14,4)", "widened"),
        ("integer", "numeric(12,0)", "widened"),
        ("integer", "numeric(5,0)", "narrowed"),
        ("date", "timestamptz", "widened"),
        ("text", "integer", "narrowed"),
        ("bigint", "bigint", "same"),
    ],
)
def test_compare(old, new, how):
    assert compare(parse_type(old), parse_type(new)) == how


@pytest.mark.parametrize(
    ("value", "type_", "ok"),
    [
        ("42", "integer", True),
        ("-9223372036854775808", "bigint", True),
        ("9223372036854775808", "bigint", False),
        ("4.2", "integer", False),
        ("12.50", "numeric(12,2)", True),
        ("12,5O", "numeric(12,2)", False),
        ("NaN", "numeric(12,2)", False),
        ("1234567890.12", "numeric(12,2)", True),
        ("12345678901.12", "numeric(12,2)", False),
        ("2024-02-30", "date", False),
        ("2024-02-29", "date", True),
        ("2024-05-01T10:00:00+02:00", "timestamptz", True),
        ("2024-05-01T10:00:00", "timestamptz", False),
        ("2024-05-01 10:00:00", "timestamp", True),
        ("yes", "boolean", True),
        ("maybe", "boolean", False),
        ("EUR", "char(3)", True),
        ("EURO", "char(3)", False),
        ("a\x00b", "text", False),
        ('{"a": 1}', "jsonb", True),
        ("{a: 1}", "jsonb", False),
        ("0b5c6c52-3f7e-4b9b-9d2c-0a4a5b1f2c3d", "uuid", True),
    ],
)
def test_check_value(value, type_, ok):
    reason = check_value(value, parse_type(type_))
    assert (reason is None) == ok, reason


def test_check_value_reason_names_value_and_type():
    assert check_value("12,5O", parse_type("numeric(12,2)")) == "'12,5O' is not a numeric(12,2)"


@pytest.mark.parametrize("type_", ["bigint", "integer", "smallint", "numeric(12,2)", "numeric(5,0)", "date",
                                   "timestamptz", "varchar(3)", "char(3)", "text", "boolean"])
@pytest.mark.parametrize("value", ["42", "-7", "99999", "3000000000", "12.50", "12.505", "9.999", "99999.5", "1e5",
                                   ".5", "5.", ".", "", "+", "2024-05-01", "2024-02-30", "2024-05-01T10:00:00+00:00",
                                   "EUR", "EURO", "yes", "0042", "12,5O", "NaN", "a\x00b"])
def test_compiled_checker_agrees_with_check_value(type_, value):
    from safeload.contracts.types import make_checker

    t = parse_type(type_)
    check = make_checker(t)
    assert (check(value) is None) == (check_value(value, t) is None)
    assert (check(value) is None) == (check(value) is None)  # the cache changes nothing


@pytest.mark.parametrize(
    ("value", "type_"),
    [
        pytest.param("2024-W18-4", "date", id="iso-week-date"),
        pytest.param("2024-05-02x10:00:00", "timestamp", id="odd-separator"),
        pytest.param("2024-W18-4T10:00:00+00:00", "timestamptz", id="iso-week-timestamptz"),
    ],
)
def test_dates_postgresql_refuses_are_refused(value, type_):
    """Python's fromisoformat reads these, PostgreSQL does not: the check must refuse them, or a
    contract passes and the load fails (found by tests/reliability/test_fuzz_csv.py)."""
    from safeload.contracts.types import make_checker

    assert check_value(value, parse_type(type_)) is not None
    assert make_checker(parse_type(type_))(value) is not None
