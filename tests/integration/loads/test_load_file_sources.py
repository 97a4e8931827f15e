"""Files as the source of a load: gzipped CSV; a missing, empty, header-only or badly
encoded file and a truncated gzip, each leaving the partition as it was; a header that
names a column twice; a field longer than Python's csv module reads by default."""

from __future__ import annotations

import pytest

from safeload.errors import LoadRefusedError, SourceError
from safeload.loads.sql import partition_checksum

from tests.integration.loads.orders import HEADER, PLAIN, loader, write_csv


def test_gzip_source(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    r = loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "a.csv.gz", "2024-05-02", 50))
    assert (r.rows, r.rows_quarantined) == (50, 0)


@pytest.mark.parametrize(
    ("content", "error", "match"),
    [
        pytest.param(None, SourceError, "does not exist", id="missing"),
        pytest.param("", SourceError, "the file is empty", id="empty-file"),
        pytest.param(",".join(HEADER) + "\n", LoadRefusedError, "has a header but no rows", id="header-only"),
        pytest.param(b"order_id,order_date\n\xff\xfe,2024\n", None, None, id="bad-encoding"),
    ],
)
def test_missing_or_empty_source_deletes_nothing(pg, pg_uri, tmp_path, content, error, match):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    src = tmp_path / "src.csv"
    if isinstance(content, bytes):
        src.write_bytes(content)
        error, match = (LoadRefusedError, SourceError), r"not valid UTF-8|malformed"
    elif content is not None:
        src.write_text(content)
    with pytest.raises(error, match=match):
        loader(pg_uri, "2024-05-02", run_key="x").run(str(src))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


def test_truncated_gzip_deletes_nothing(pg, pg_uri, tmp_path):
    pg.execute(PLAIN)
    loader(pg_uri, "2024-05-02").run(write_csv(tmp_path / "good.csv", "2024-05-02", 100))
    before = partition_checksum(pg, "public.orders", "order_date", "2024-05-02")
    full = write_csv(tmp_path / "full.csv.gz", "2024-05-02", 20000)
    data = open(full, "rb").read()
    trunc = tmp_path / "trunc.csv.gz"
    trunc.write_bytes(data[: len(data) // 2])
    with pytest.raises((SourceError, LoadRefusedError, EOFError)):
        loader(pg_uri, "2024-05-02", run_key="t").run(str(trunc))
    assert partition_checksum(pg, "public.orders", "order_date", "2024-05-02") == before


def test_header_naming_a_column_twice_is_refused_clearly(pg, pg_uri, tmp_path):
    """Two header columns that differ only in case map to one target column: refused,
    naming the file's line 1 and the column."""
    pg.execute(PLAIN)
    src = tmp_path / "dup.csv"
    src.write_text("order_id,order_date,amount,Amount\n1,2024-05-02,1.00,2.00\n")
    with pytest.raises(LoadRefusedError, match=r"dup.csv line 1: the header names column 'Amount' more than once"):
        loader(pg_uri, "2024-05-02").run(str(src))


def test_field_over_pythons_csv_limit_loads_on_the_checked_path(pg, pg_uri, tmp_path):
    """A field over 128 KiB, which Python's csv module refuses by default, loads on the
    checked path (the other bad row sends the file there) and is quarantined whole."""
    pg.execute(PLAIN)
    huge = "h" * 200_000  # Python's csv module refuses fields over 128 KiB by default
    src = write_csv(tmp_path / "huge.csv", "2024-05-02", 2,
                    bad=[["3", "2024-05-02", "1.00", huge], ["x", "2024-05-02", "1", huge]])
    r = loader(pg_uri, "2024-05-02", max_bad_rows=1).run(src)
    assert (r.rows, r.rows_quarantined) == (3, 1)
    assert pg.execute("select length(status) from public.orders where order_id = 3").fetchone()[0] == 200_000
    assert pg.execute("select length(raw) > 200000 from safeload.quarantine").fetchone()[0]
