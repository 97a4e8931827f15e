"""A CSV file's bytes re-cut at record boundaries for parallel COPY streams: every block
holds whole records, nothing is lost or repeated, quoted line feeds stay inside their
record, and the header goes only when asked."""

from __future__ import annotations

import csv
import io

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from safeload.loads.staging.split import last_record_end, record_blocks, record_end


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i:i + size] for i in range(0, len(data), size)]


def records(data: bytes) -> list[list[str]]:
    return list(csv.reader(io.StringIO(data.decode(), newline="")))


QUOTED = (b'id,note\n1,"two\nlines"\n2,"a ""quoted"" word, and a comma"\n3,plain\n'
          b'4,"ends with a line feed\n"\n5,"""\n"""\n')


@pytest.mark.parametrize("size", [1, 2, 3, 5, 7, 16, 1 << 20])
def test_every_block_holds_whole_records_and_together_they_are_the_file(size):
    blocks = list(record_blocks(chunks(QUOTED, size)))
    assert b"".join(blocks) == QUOTED
    for block in blocks:
        assert block.endswith(b"\n")
        assert records(block)  # parses alone, as one stream's COPY would
    assert sum(len(records(b)) for b in blocks) == len(records(QUOTED))


@pytest.mark.parametrize("piece", [1, 10, 25, 1 << 20])
def test_blocks_are_cut_into_pieces_of_whole_records_of_about_the_size_asked(piece):
    data = QUOTED * 20
    pieces = list(record_blocks(chunks(data, 100), size=piece))
    assert b"".join(pieces) == data
    assert all(records(p) for p in pieces)
    longest_record = 40
    assert all(len(p) <= max(piece, longest_record) for p in pieces)


@pytest.mark.parametrize("size", [1, 4, 9, 1 << 20])
def test_the_header_record_is_dropped_when_asked_even_across_blocks(size):
    data = b'"id","a\nheader, in two lines"\n1,x\n2,y\n'
    assert b"".join(record_blocks(chunks(data, size), skip_header=True)) == b"1,x\n2,y\n"


def test_a_record_longer_than_the_blocks_is_gathered_whole():
    long = b'1,"' + b"x\n" * 1000 + b'"\n'
    blocks = list(record_blocks(chunks(b"h\n" + long + b"2,y\n", 64), skip_header=True))
    assert b"".join(blocks) == long + b"2,y\n"
    assert all(len(records(b)) >= 1 for b in blocks)
    assert [r[0] for b in blocks for r in records(b)] == ["1", "2"]


def test_a_last_record_without_its_line_feed_is_kept():
    assert list(record_blocks([b"h\n1,x\n2,", b"y"], skip_header=True)) == [b"1,x\n", b"2,y"]


def test_crlf_line_ends_are_cut_after_the_line_feed():
    data = b'h\r\n1,"a\r\nb"\r\n2,c\r\n'
    blocks = list(record_blocks(chunks(data, 3), skip_header=True))
    assert b"".join(blocks) == b'1,"a\r\nb"\r\n2,c\r\n'
    assert all(b.endswith(b"\r\n") for b in blocks)


def test_a_file_with_only_a_header_gives_no_block():
    assert list(record_blocks([b"id,note\n"], skip_header=True)) == []
    assert list(record_blocks([b"id,note"], skip_header=True)) == []


def test_record_ends_count_quotes_from_the_record_start():
    assert record_end(b'a,"x\ny"\nb\n') == 8
    assert record_end(b'a,"x\ny') == -1
    assert last_record_end(b'1\n2,"x\n') == 2
    assert last_record_end(b'1,"x\n') == -1


cells = st.text(alphabet=st.sampled_from(list('ab,"\n é')), max_size=8)


@settings(max_examples=300, deadline=None)
@given(rows=st.lists(st.lists(cells, min_size=1, max_size=4), min_size=1, max_size=30),
       size=st.integers(min_value=1, max_value=40), piece=st.one_of(st.none(), st.integers(1, 60)))
def test_any_csv_cut_into_any_blocks_gives_the_same_records(rows, size, piece):
    buf = io.StringIO(newline="")
    csv.writer(buf, lineterminator="\n").writerows([["header"], *rows])
    data = buf.getvalue().encode()
    blocks = list(record_blocks(chunks(data, size), skip_header=True, size=piece))
    assert [r for b in blocks for r in records(b)] == records(data)[1:]
