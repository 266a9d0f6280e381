"""Dataset import: types inferred, commitment reproducible, malformed files rejected by
line, and the columnar path held equal to the row-wise code it replaced."""

from __future__ import annotations

import csv
import re
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.rows import Column, row_leaf_hashes, schema_digest
from node import datasets
from node.datasets import import_csv, import_file, table_root

KEY = bytes(range(32))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def reference_root(key: bytes, rows: list[dict[str, int | str]]) -> bytes:
    return merkle.root(row_leaf_hashes(key, rows))


def test_types_and_commitment(tmp_path: Path) -> None:
    data = import_csv(write(tmp_path, "id,amount\nA1,10\nA2,-3\n"), KEY)
    assert [(c.name, c.type) for c in data.columns] == [("id", "string"), ("amount", "integer")]
    assert data.rows == [{"id": "A1", "amount": 10}, {"id": "A2", "amount": -3}]
    assert data.merkle_root == reference_root(KEY, data.rows)
    assert data.row_count == 2 and data.version_key == KEY


def test_the_table_is_columnar_in_schema_order(tmp_path: Path) -> None:
    data = import_csv(write(tmp_path, "name,age,balance\nAda,36,-5\nBob,41,7\n"), KEY)
    assert data.table.schema == pa.schema(
        [("name", pa.string()), ("age", pa.int64()), ("balance", pa.int64())]
    )
    assert data.table.column("balance").to_pylist() == [-5, 7]
    assert data.schema_digest == schema_digest(data.columns)


def test_quoting_does_not_change_the_commitment(tmp_path: Path) -> None:
    a = import_csv(write(tmp_path, "id,amount\nA1,10\n"), KEY)
    b = import_csv(write(tmp_path, 'id,amount\n"A1","10"\n'), KEY)
    assert a.merkle_root == b.merkle_root and a.schema_digest == b.schema_digest


def test_fresh_keys_give_unlinkable_commitments(tmp_path: Path) -> None:
    path = write(tmp_path, "id\nA1\n")
    assert import_csv(path).merkle_root != import_csv(path).merkle_root


@pytest.mark.parametrize("text", ["id,amount\n", "id,amount", "id,amount\r\n"])
def test_a_header_only_file_is_refused(tmp_path: Path, text: str) -> None:
    # Found by a newcomer: a header-only CSV registered an empty dataset (0 rows) on chain.
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, text), KEY)
    assert exc.value.field == "dataset file"
    assert "d.csv has a header but no rows" in exc.value.problem


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "dataset file"),
        ("\nid\nA\n", "dataset file"),
        ("id,amount\nA1,10\nA2\n", "d.csv line 3"),
        ("id,amount\nA1,10\nA2,1,2\n", "d.csv line 3"),
        ("id,amount\nA1,10\n\nA2,3\n", "d.csv line 3"),
        ("id\nA\n\n", "d.csv line 3"),
        ("id,id\nA,B\n", "header column 2"),
        ("id,\nA,B\n", "header column 2"),
        ('id\n"unterminated\n', "d.csv line"),
        ('id\n"a"b\n', "d.csv line 2"),
        ("id\n" + "x" * 131_073 + "\n", "d.csv line 2"),
    ],
)
def test_malformed_files_are_rejected_by_line(tmp_path: Path, text: str, field: str) -> None:
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, text), KEY)
    assert exc.value.field.startswith(field)


def test_missing_and_binary_files(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="does not exist"):
        import_csv(tmp_path / "nope.csv", KEY)
    binary = tmp_path / "b.csv"
    binary.write_bytes(b"\xff\xfe\x00id\n")
    with pytest.raises(InvalidInput, match="UTF-8"):
        import_csv(binary, KEY)
    binary.write_bytes(b"id\nok\n\xff\xfe\n")
    with pytest.raises(InvalidInput, match="UTF-8"):
        import_csv(binary, KEY)


def test_integers_beyond_the_json_range_are_rejected_naming_the_line(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, "id,v\nA,1\nB,9007199254740992\n"), KEY)
    assert exc.value.field == "d.csv line 3" and "'v'" in exc.value.problem
    edge = import_csv(write(tmp_path, "v\n9007199254740991\n-9007199254740991\n"), KEY)
    assert edge.rows == [{"v": 2**53 - 1}, {"v": -(2**53 - 1)}]


def test_integer_inference_follows_the_row_wise_rules(tmp_path: Path) -> None:
    text = "a,b,c,d\n 7 ,007,-0,\u0663\n-1,2,3,4\n"
    data = import_csv(write(tmp_path, text), KEY)
    assert [c.type for c in data.columns] == ["integer"] * 4
    assert data.rows[0] == {"a": 7, "b": 7, "c": 0, "d": 3}
    assert data.merkle_root == reference_root(KEY, data.rows)
    # 19 digits were silently text before issue 12; a number column is exact or refused.
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, "e\n1234567890123456789\n-1234567890123456\n"), KEY)
    assert exc.value.field == "d.csv line 2" and "'1234567890123456789'" in exc.value.problem


def test_line_numbers_are_right_across_read_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(datasets, "_READ_BLOCK", 64)
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 4)
    lines = ["id,v", *(f"A{i},{i}" for i in range(40))]
    good = import_csv(write(tmp_path, "\n".join(lines) + "\n"), KEY)
    assert good.row_count == 40 and good.merkle_root == reference_root(KEY, good.rows)
    lines[30] = "A29"
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, "\n".join(lines) + "\n"), KEY)
    assert exc.value.field == "d.csv line 31"
    lines[30] = "A29,9007199254740992"
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, "\n".join(lines) + "\n"), KEY)
    assert exc.value.field == "d.csv line 31"


# --- identifier columns ------------------------------------------------------------


def test_identifier_columns_are_marked_and_committed(tmp_path: Path) -> None:
    path = write(tmp_path, "account,phone,balance\nAC1,+4411,5\n")
    plain = import_csv(path, KEY)
    marked = import_csv(path, KEY, identifier_columns=["phone", "account"])
    assert [c.identifier for c in marked.columns] == [True, True, False]
    assert marked.schema_digest != plain.schema_digest
    assert marked.merkle_root == plain.merkle_root  # the rows are the same rows
    parquet = tmp_path / "d.parquet"
    pq.write_table(plain.table, parquet)
    again = import_file(parquet, KEY, identifier_columns=("account", "phone"))
    assert again.schema_digest == marked.schema_digest


def test_an_unknown_identifier_column_is_named(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, "account\nAC1\n"), KEY, identifier_columns=["acount"])
    assert exc.value.field == "identifierColumns" and "'acount'" in exc.value.problem


# --- Parquet -----------------------------------------------------------------------


def test_parquet_and_csv_of_the_same_rows_commit_identically(tmp_path: Path) -> None:
    csv_file = write(tmp_path, "id,amount\nA1,10\nA2,-3\n")
    parquet = tmp_path / "d.parquet"
    pq.write_table(
        pa.table({"id": pa.array(["A1", "A2"], pa.large_string()), "amount": [10, -3]}), parquet
    )
    a, b = import_file(csv_file, KEY), import_file(parquet, KEY)
    assert a.rows == b.rows and a.merkle_root == b.merkle_root
    assert a.schema_digest == b.schema_digest and a.table.equals(b.table)


def test_parquet_rejections(tmp_path: Path) -> None:
    floats = tmp_path / "f.parquet"
    pq.write_table(pa.table({"x": [1.5]}), floats)
    with pytest.raises(InvalidInput, match="column 'x'"):
        import_file(floats, KEY)
    nulls = tmp_path / "n.parquet"
    pq.write_table(pa.table({"s": ["a", "b", "c"], "x": [1, 2, None]}), nulls)
    with pytest.raises(InvalidInput, match="row 3"):
        import_file(nulls, KEY)
    huge = tmp_path / "h.parquet"
    pq.write_table(pa.table({"x": pa.array([1, 2**63 + 5], pa.uint64())}), huge)
    with pytest.raises(InvalidInput) as exc:
        import_file(huge, KEY)
    assert exc.value.field == "h.parquet row 2"
    junk = tmp_path / "j.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match="not a Parquet file"):
        import_file(junk, KEY)
    with pytest.raises(InvalidInput, match=r"expected a \.csv or \.parquet"):
        import_file(tmp_path / "x.xlsx", KEY)


# --- the commitment on worker processes --------------------------------------------


def test_worker_processes_compute_the_same_root(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets, "CHUNK_ROWS", 8)
    monkeypatch.setattr(datasets, "POOL_MIN_ROWS", 1)
    rows: list[dict[str, int | str]] = [
        {"id": f'P"{i}', "v": i * 7 - 50, "é": "x" * (i % 5)} for i in range(101)
    ]
    columns = [Column("id", "string"), Column("v", "integer"), Column("é", "string")]
    table = pa.Table.from_pylist(rows, schema=datasets.arrow_schema(columns))
    with datasets.hashing_pool() as pool:
        if pool is None:
            pytest.skip("one usable core: no worker processes")
        assert table_root(KEY, columns, table, pool) == reference_root(KEY, rows)
    assert table_root(KEY, columns, table.slice(0, 0)) == merkle.root([])


# --- equal to the row-wise importer it replaced ------------------------------------


@dataclass(frozen=True)
class Legacy:
    columns: list[Column]
    rows: list[dict[str, int | str]]


def legacy_import_csv(path: Path) -> Legacy:
    """The importer before the columnar path, verbatim in its rules (csv module in
    strict mode, row dicts): what the new one must accept, reject and produce."""
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle, strict=True)
        try:
            header = next(reader, None)
            if not header:
                raise InvalidInput("dataset file", f"{path} is empty (no header line)")
            datasets._check_header(header)
            body = []
            for row in reader:
                if len(row) != len(header):
                    raise InvalidInput(
                        f"{path.name} line {reader.line_num}",
                        f"expected {len(header)} fields, got {len(row)}",
                    )
                body.append(row)
        except csv.Error as exc:
            raise InvalidInput(f"{path.name} line {reader.line_num}", str(exc)) from None
        except UnicodeDecodeError:
            raise InvalidInput("dataset file", f"{path} is not UTF-8 text") from None
    columns = []
    for i, name in enumerate(header):
        is_int = bool(body) and all(datasets._parses_as_int(r[i]) for r in body)
        columns.append(Column(name, "integer" if is_int else "string"))
    rows: list[dict[str, int | str]] = [
        {c.name: int(v) if c.type == "integer" else v for c, v in zip(columns, r, strict=True)}
        for r in body
    ]
    merkle.root(row_leaf_hashes(KEY, rows))  # integers beyond 2**53 failed here
    return Legacy(columns, rows)


def _is_number(value: str) -> bool:
    """A number by issue 12's rules (ASCII decimal form), besides the integer rule's."""
    pattern = r"[ \t]*-?(?:[0-9]+(?:\.[0-9]*)?|\.[0-9]+)(?:[eE][+-]?[0-9]+)?[ \t]*"
    return datasets._parses_as_int(value) or re.fullmatch(pattern, value, re.ASCII) is not None


@contextmanager
def small_batches(enabled: bool) -> Iterator[None]:
    """Tiny read blocks and chunks, so a few rows span several batches and chunks."""
    with pytest.MonkeyPatch.context() as patch:
        if enabled:
            patch.setattr(datasets, "_READ_BLOCK", 256)
            patch.setattr(datasets, "CHUNK_ROWS", 2)
        yield


def assert_same_as_legacy(data: bytes, small: bool) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        path.write_bytes(data)
        try:
            expected: Legacy | InvalidInput | Exception = legacy_import_csv(path)
        except InvalidInput as exc:
            expected = exc
        except ValueError as exc:  # int("--5"), or canonical JSON of a huge integer
            expected = exc
        with small_batches(small):
            try:
                got: datasets.ImportedDataset | InvalidInput = import_csv(path, KEY)
            except InvalidInput as exc:
                got = exc
    if isinstance(expected, Legacy) and not expected.rows:  # issue 12: refused now
        assert isinstance(got, InvalidInput) and "has a header but no rows" in got.problem
    elif isinstance(expected, Legacy) and any(
        any(_is_number(str(r[c.name])) for r in expected.rows)
        for c in expected.columns
        if c.type == "string"
    ):  # issue 12: numbers beside text, or numbers the integer rule did not take
        assert isinstance(got, InvalidInput), (expected, got)
    elif isinstance(expected, InvalidInput):
        assert isinstance(got, InvalidInput), (expected, got)
        assert (got.field, got.problem) == (expected.field, expected.problem)
    elif isinstance(expected, Exception):
        assert isinstance(got, InvalidInput), (expected, got)  # a crash became a rejection
    else:
        assert isinstance(got, datasets.ImportedDataset), (expected, got)
        assert got.columns == expected.columns
        assert got.rows == expected.rows
        assert got.merkle_root == reference_root(KEY, expected.rows)


FIELD = st.one_of(
    st.text(alphabet="ab1-0 ,\"'\u0663\u00b2\u00a0\x1c\t\\é😀", max_size=6),
    st.integers(-(2**60), 2**60).map(str),
    st.sampled_from(["", " 5", "5 ", "--5", "-", "007", "+1", "1_0", "9007199254740992"]),
)


@st.composite
def csv_files(draw: st.DrawFn) -> bytes:
    width = draw(st.integers(1, 4))
    header = draw(
        st.lists(st.text(alphabet='ab ,"é\ufeff', max_size=3), min_size=width, max_size=width)
    )
    rows = [
        draw(st.lists(FIELD, min_size=max(0, width - 1), max_size=width + 1))
        if draw(st.integers(0, 9)) == 0
        else draw(st.lists(FIELD, min_size=width, max_size=width))
        for _ in range(draw(st.integers(0, 8)))
    ]
    eol = draw(st.sampled_from(["\n", "\r\n", "\r"]))

    def cell(value: str) -> str:
        must = any(ch in value for ch in ',"\r\n')
        if must or draw(st.integers(0, 5)) == 0:
            return '"' + value.replace('"', '""') + '"'
        return value

    lines = [",".join(cell(v) for v in row) for row in [header, *rows]]
    text = eol.join(lines) + draw(st.sampled_from(["", eol, eol + eol]))
    bom = "\ufeff" if draw(st.integers(0, 9)) == 0 else ""
    return (bom + text).encode("utf-8")


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(csv_files(), st.booleans())
def test_import_equals_the_row_wise_importer(data: bytes, small: bool) -> None:
    assert_same_as_legacy(data, small)


@settings(max_examples=300, deadline=None)
@given(
    st.text(alphabet='a1-, "\r\n\u0663\u00b2\u00a0\x1c', min_size=0, max_size=40),
    st.booleans(),
)
def test_import_of_chaotic_text_equals_the_row_wise_importer(text: str, small: bool) -> None:
    assert_same_as_legacy(("id,n\n" + text).encode("utf-8"), small)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=40), st.booleans())
def test_import_of_arbitrary_bytes_equals_the_row_wise_importer(tail: bytes, small: bool) -> None:
    assert_same_as_legacy(b"a,b\n" + tail, small)


@pytest.mark.parametrize("value", ["--5", "-", "+-5", "²", "1²", "①"])
def test_a_doubled_or_bare_sign_is_text_not_a_number(tmp_path: Path, value: str) -> None:
    """`int()` refuses these, so type inference must too: a column holding one beside
    numbers is mixed (refused, naming the line), never an integer column that crashes."""
    path = tmp_path / "d.csv"
    path.write_text(f"id,amount\nA,5\nB,{value}\n")
    with pytest.raises(InvalidInput) as refused:
        import_csv(path, KEY)
    assert "line 3" in f"{refused.value.field} {refused.value.problem}"
    assert value in refused.value.problem
    assert not datasets._parses_as_int(value)
