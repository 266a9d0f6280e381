"""Decimal columns, mixed columns and header-only files (issue 12), found the way a
newcomer found them: balances with cents, a stray "n/a", a file with only a header."""

from __future__ import annotations

import random
import tempfile
from decimal import Context, Decimal
from fractions import Fraction
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ledger import merkle
from ledger.canonical import digest_json
from ledger.ids import InvalidInput
from ledger.rows import MAX_SCALED, Column, decimal_text, row_leaf_hashes, schema_digest
from node import datasets
from node.algorithms import stats
from node.datasets import import_csv, import_file
from tests.node.test_stats import run_protocol

KEY = bytes(range(32))


def write(tmp_path: Path, text: str, name: str = "d.csv") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_balances_with_cents_become_an_exact_decimal_column(tmp_path: Path) -> None:
    data = import_csv(write(tmp_path, "id,balance\nA,12.5\nB,1e3\nC,-0.05\nD,7\n"), KEY)
    assert data.columns == [Column("id", "string"), Column("balance", "decimal", scale=2)]
    assert [r["balance"] for r in data.rows] == ["12.50", "1000.00", "-0.05", "7.00"]
    assert data.table.schema.field("balance").type == pa.decimal128(18, 2)
    # The commitment is the row-wise reference over the canonical decimal text.
    assert data.merkle_root == merkle.root(row_leaf_hashes(KEY, data.rows))
    again = import_csv(write(tmp_path, 'id,balance\n"A","12.50"\nB,1000\nC,-.05\nD,7.00\n'), KEY)
    assert again.merkle_root == data.merkle_root and again.schema_digest == data.schema_digest


def test_the_scale_is_part_of_the_schema_digest() -> None:
    cents = [Column("balance", "decimal", scale=2)]
    assert schema_digest(cents) == digest_json(
        "dataset-schema", [{"name": "balance", "type": "decimal", "scale": 2}]
    )
    assert schema_digest(cents) != schema_digest([Column("balance", "decimal", scale=3)])
    assert schema_digest(cents) != schema_digest([Column("balance", "string")])
    with pytest.raises(ValueError, match=r"scale must be 1\.\.18"):
        Column("balance", "decimal")
    with pytest.raises(ValueError, match="has no scale"):
        Column("balance", "integer", scale=2)


def test_a_column_of_integers_and_exponents_stays_integer(tmp_path: Path) -> None:
    data = import_csv(write(tmp_path, "v\n1e3\n5\n1.5e1\n"), KEY)
    assert data.columns == [Column("v", "integer")]
    assert data.rows == [{"v": 1000}, {"v": 5}, {"v": 15}]


@pytest.mark.parametrize(
    ("text", "line", "shown"),
    [
        ("id,balance\nA,12.5\nB,n/a\n", 3, "'n/a' is not a number, but line 2 holds the number"),
        ("id,balance\nA,12\nB,\n", 3, "an empty value is not a number"),
        ("id,name\nA,Alice\nB,Bob\nC,2024\n", 4, "'2024' is a number, but line 2 holds the text"),
    ],
)
def test_a_mixed_column_is_refused_naming_line_and_value(
    tmp_path: Path, text: str, line: int, shown: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, text), KEY)
    assert exc.value.field == f"d.csv line {line}"
    assert "mixes numbers and text" in exc.value.problem and shown in exc.value.problem
    assert "identifier column" in exc.value.problem


def test_identifier_columns_of_digits_stay_text(tmp_path: Path) -> None:
    path = write(tmp_path, "account,balance\n007,1.5\n0123,2\n")
    data = import_csv(path, KEY, identifier_columns=["account"])
    assert data.columns[0] == Column("account", "string", identifier=True)
    assert [r["account"] for r in data.rows] == ["007", "0123"]  # leading zeros kept
    mixed = write(tmp_path, "account,balance\n007,1.5\nX-1,2\n", "m.csv")
    assert import_csv(mixed, KEY, identifier_columns=["account"]).columns[0].type == "string"


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0.0000000000000000001", "19 digits after the point"),
        ("1e400", "beyond"),
        ("123456789012345678.5", "beyond 18 digits"),
    ],
)
def test_decimals_beyond_the_exact_range_are_refused(
    tmp_path: Path, value: str, problem: str
) -> None:
    with pytest.raises(InvalidInput) as exc:
        import_csv(write(tmp_path, f"v\n1.5\n{value}\n"), KEY)
    assert exc.value.field == "d.csv line 3" and problem in exc.value.problem
    assert repr(value) in exc.value.problem


def test_parquet_decimals_commit_as_the_csv_does(tmp_path: Path) -> None:
    csv_data = import_csv(write(tmp_path, "id,balance\nA,12.5\nB,-0.05\n"), KEY)
    table = pa.table(
        {
            "id": ["A", "B"],
            "balance": pa.array([Decimal("12.50"), Decimal("-0.05")], pa.decimal128(30, 2)),
        }
    )
    pq.write_table(table, tmp_path / "d.parquet")
    parquet = import_file(tmp_path / "d.parquet", KEY)
    assert parquet.columns == csv_data.columns and parquet.merkle_root == csv_data.merkle_root


def test_parquet_floats_and_empty_tables_are_refused(tmp_path: Path) -> None:
    pq.write_table(pa.table({"v": pa.array([1.5], pa.float64())}), tmp_path / "f.parquet")
    with pytest.raises(InvalidInput, match=r"not exact.*decimal128"):
        import_file(tmp_path / "f.parquet", KEY)
    pq.write_table(pa.table({"v": pa.array([], pa.int64())}), tmp_path / "e.parquet")
    with pytest.raises(InvalidInput, match="no rows"):
        import_file(tmp_path / "e.parquet", KEY)


# --- secure statistics over a decimal column ----------------------------------------

COLUMNS = [
    {"name": "account", "type": "string", "identifier": True},
    {"name": "balance", "type": "decimal", "scale": 2},
]


def decimal_rows(rng: random.Random, count: int) -> list[dict[str, int | str]]:
    return [
        {
            "account": f"A{rng.randrange(10**6)}",
            "balance": decimal_text(rng.randint(-(10**9), 10**9), 2),
        }
        for _ in range(count)
    ]


def test_params_describe_the_schema_exactly(tmp_path: Path) -> None:
    path = write(tmp_path, "account,balance\n007,1.5\n0123,2.25\n")
    data = import_csv(path, KEY, identifier_columns=["account"])
    params = stats.StatsParams.from_json({"columns": COLUMNS, "value_column": "balance"})
    assert schema_digest(params.columns) == data.schema_digest
    assert stats.StatsParams.from_json(params.to_json()) == params
    with pytest.raises(stats.InvalidParams) as exc:
        stats.StatsParams.from_json({"columns": [{"name": "b", "type": "decimal"}]})
    assert exc.value.field == "columns[0].scale"
    with pytest.raises(stats.InvalidParams) as exc:
        stats.StatsParams.from_json({"columns": [{"name": "b", "type": "integer", "scale": 2}]})
    assert exc.value.field == "columns[0].scale"
    with pytest.raises(stats.InvalidParams) as exc:
        stats.StatsParams.from_json({"columns": [{"name": "b", "type": "string", "identifier": 1}]})
    assert exc.value.field == "columns[0].identifier"


@pytest.mark.parametrize("value", ["12.505", "1e20", "abc", True, float("nan")])
def test_bad_decimal_filter_values_are_refused(value: object) -> None:
    with pytest.raises(stats.InvalidParams) as exc:
        stats.StatsParams.from_json(
            {"columns": COLUMNS, "filter": {"column": "balance", "op": ">", "value": value}}
        )
    assert exc.value.field == "filter.value"


def test_secure_stats_over_decimals_equal_the_exact_plaintext() -> None:
    rng = random.Random(7)
    rows = {f"p{i}": decimal_rows(rng, 30) for i in range(1, 4)}
    params = stats.StatsParams.from_json(
        {
            "columns": COLUMNS,
            "value_column": "balance",
            "filter": {"column": "balance", "op": ">=", "value": "-2500000.5"},
        }
    )
    assert params.filter is not None and params.filter.value == "-2500000.50"
    run = run_protocol(params, rows)
    result = run.ok()
    pooled = [Decimal(r["balance"]) for rs in rows.values() for r in rs]  # type: ignore[arg-type]
    chosen = [v for v in pooled if v >= Decimal("-2500000.5")]
    exact = [Fraction(v) for v in chosen]
    mean = sum(exact, Fraction(0)) / len(exact)
    assert result.count == len(chosen)
    assert result.sum == sum(chosen) and isinstance(result.sum, Decimal)
    assert result.mean == mean
    assert result.variance == sum((v - mean) ** 2 for v in exact) / len(exact)
    assert result.to_json()["sum"] == decimal_text(int(sum(chosen) * 100), 2)
    assert result == stats.plaintext_stats(params, [r for rs in rows.values() for r in rs])


def test_value_bound_is_in_the_columns_units() -> None:
    params = stats.StatsParams.from_json(
        {"columns": COLUMNS, "value_column": "balance", "value_bound": 100}
    )
    rows: list[dict[str, int | str]] = [
        {"account": "a", "balance": "250.75"},
        {"account": "b", "balance": "-0.25"},
    ]
    # Clipped to [-100.00, 100.00]: 100.00 + (-0.25), in scaled (cent) units.
    assert stats.local_vector(params, rows) == [2, 9975, 10000**2 + 25**2]


# --- the column-wise conversion equals the plain Python definition -----------------


def reference_decimals(written: list[str]) -> tuple[int, list[int]]:
    """The scale and scaled values of a decimal column, by ``decimal.Decimal`` alone."""
    numbers = [Decimal(w.strip(" \t")) for w in written]
    scale = max(max(0, -int(n.as_tuple().exponent)) for n in numbers)
    return scale, [int(n.scaleb(scale, Context(prec=60))) for n in numbers]


def written_forms(draw: st.DrawFn, scaled: int, scale: int) -> str:
    value = Decimal(scaled).scaleb(-scale, Context(prec=60))
    form = draw(st.sampled_from(["fixed", "normal", "exp", "padded", "spaced"]))
    if form == "normal":
        return str(value.normalize(Context(prec=60)))
    if form == "exp":
        return f"{value:e}"
    if form == "padded":
        return f"{value:f}" + "0" * draw(st.integers(0, 18 - scale))
    if form == "spaced":
        return f" \t{value:f} "
    return f"{value:f}"


@st.composite
def decimal_columns(draw: st.DrawFn) -> list[str]:
    scale = draw(st.integers(1, 18))
    count = draw(st.integers(1, 12))
    values = [draw(st.integers(-MAX_SCALED, MAX_SCALED)) for _ in range(count)]
    return [written_forms(draw, v, scale) for v in values]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(decimal_columns(), st.booleans())
def test_decimal_import_equals_the_decimal_module(written: list[str], small: bool) -> None:
    scale, scaled = reference_decimals(written)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "d.csv"
        path.write_text("id,v\n" + "".join(f"r{i},{w}\n" for i, w in enumerate(written)))
        with pytest.MonkeyPatch.context() as patch:
            if small:
                patch.setattr(datasets, "_READ_BLOCK", 256)
                patch.setattr(datasets, "CHUNK_ROWS", 2)
            try:
                data = import_csv(path, KEY)
            except InvalidInput as exc:  # only when the written digits exceed the limits
                assert scale > 18 or any(abs(v) > MAX_SCALED for v in scaled), exc
                return
    column = data.columns[1]
    if scale == 0:
        assert column == Column("v", "integer") and [r["v"] for r in data.rows] == scaled
    else:
        assert column == Column("v", "decimal", scale=scale)
        assert [r["v"] for r in data.rows] == [decimal_text(v, scale) for v in scaled]
    assert data.merkle_root == merkle.root(row_leaf_hashes(KEY, data.rows))


def test_decimal_text_is_canonical() -> None:
    assert [decimal_text(v, 2) for v in (0, -1, 1, -100, 123456)] == [
        "0.00",
        "-0.01",
        "0.01",
        "-1.00",
        "1234.56",
    ]
    assert decimal_text(1, 18) == "0.000000000000000001"
    assert decimal_text(-(10**18 - 1), 18) == "-0.999999999999999999"


def test_histograms_and_equality_filters_on_decimals_are_exact() -> None:
    columns = [{"name": "price", "type": "decimal", "scale": 2}]
    rows: list[dict[str, int | str]] = [
        {"price": p} for p in ["1.50", "1.50", "2.00", "0.10", "0.30", "-0.10"]
    ]
    params = stats.StatsParams.from_json(
        {"columns": columns, "group_column": "price", "categories": [1.5, "2", "0.1"]}
    )
    assert params.categories == ("1.50", "2.00", "0.10")
    result = stats.plaintext_stats(params, rows)
    assert result.histogram is not None
    assert [c.count for c in result.histogram] == [2, 1, 1, 2]
    # 0.1 + 0.2 == 0.3 exactly here, unlike in binary floating point.
    equal = stats.StatsParams.from_json(
        {"columns": columns, "filter": {"column": "price", "op": "==", "value": "0.3"}}
    )
    assert stats.plaintext_stats(equal, rows).count == 1
    below = stats.StatsParams.from_json(
        {"columns": columns, "filter": {"column": "price", "op": "<", "value": 0}}
    )
    assert stats.plaintext_stats(below, rows).count == 1
