"""CSV import: types inferred, commitment reproducible, malformed files rejected by line."""

from __future__ import annotations

from pathlib import Path

import pytest

from ledger import merkle
from ledger.ids import InvalidInput
from ledger.rows import row_leaf_hashes
from node.datasets import import_csv

KEY = bytes(range(32))


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "d.csv"
    path.write_text(text)
    return path


def test_types_and_commitment(tmp_path: Path) -> None:
    data = import_csv(write(tmp_path, "id,amount\nA1,10\nA2,-3\n"), KEY)
    assert [(c.name, c.type) for c in data.columns] == [("id", "string"), ("amount", "integer")]
    assert data.rows == [{"id": "A1", "amount": 10}, {"id": "A2", "amount": -3}]
    assert data.merkle_root == merkle.root(row_leaf_hashes(KEY, data.rows))


def test_quoting_does_not_change_the_commitment(tmp_path: Path) -> None:
    a = import_csv(write(tmp_path, "id,amount\nA1,10\n"), KEY)
    b = import_csv(write(tmp_path, 'id,amount\n"A1","10"\n'), KEY)
    assert a.merkle_root == b.merkle_root and a.schema_digest == b.schema_digest


def test_fresh_keys_give_unlinkable_commitments(tmp_path: Path) -> None:
    path = write(tmp_path, "id\nA1\n")
    assert import_csv(path).merkle_root != import_csv(path).merkle_root


@pytest.mark.parametrize(
    ("text", "field"),
    [
        ("", "dataset file"),
        ("id,amount\nA1,10\nA2\n", "d.csv line 3"),
        ("id,id\nA,B\n", "header column 2"),
        ("id,\nA,B\n", "header column 2"),
        ('id\n"unterminated\n', "d.csv line"),
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


def test_parquet_and_csv_of_the_same_rows_commit_identically(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from node.datasets import import_file

    csv = write(tmp_path, "id,amount\nA1,10\nA2,-3\n")
    parquet = tmp_path / "d.parquet"
    pq.write_table(pa.table({"id": ["A1", "A2"], "amount": [10, -3]}), parquet)
    a, b = import_file(csv, KEY), import_file(parquet, KEY)
    assert a.rows == b.rows and a.merkle_root == b.merkle_root
    assert a.schema_digest == b.schema_digest


def test_parquet_rejections(tmp_path: Path) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    from node.datasets import import_file

    floats = tmp_path / "f.parquet"
    pq.write_table(pa.table({"x": [1.5]}), floats)
    with pytest.raises(InvalidInput, match="column 'x'"):
        import_file(floats, KEY)
    nulls = tmp_path / "n.parquet"
    pq.write_table(pa.table({"x": [1, None]}), nulls)
    with pytest.raises(InvalidInput, match="row 2"):
        import_file(nulls, KEY)
    junk = tmp_path / "j.parquet"
    junk.write_bytes(b"not parquet")
    with pytest.raises(InvalidInput, match="not a Parquet file"):
        import_file(junk, KEY)
    with pytest.raises(InvalidInput, match=r"expected a \.csv or \.parquet"):
        import_file(tmp_path / "x.xlsx", KEY)
