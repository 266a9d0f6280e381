"""Lookup files (publish, verify, screen) against a plaintext oracle.

The oracle is ``node.lookup.inputs`` itself, applied row by row with the scalar rule
to the raw cell values: whatever the vectorised reader does, its inputs must be the
ones a querier computes with ``membership_input`` / ``element_input`` for the same
identifier written any other way.
"""

from __future__ import annotations

import csv
import random
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from node.algorithms.identifiers import (
    InvalidIdentifier,
    UnknownIdentifierKind,
    id_check_digit,
    luhn_valid,
    normalise,
)
from node.lookup import inputs
from node.lookup.listing import (
    MAX_IDENTIFIER_BYTES,
    MAX_REPORTED,
    BadEventTimeError,
    BadLabelError,
    DuplicateColumnError,
    InvalidRowsError,
    ListedEntry,
    ListingError,
    ListingFileError,
    MissingColumnError,
    MissingKindError,
    RefusedIdentifierError,
    RowError,
    UnknownColumnError,
    UnknownKindError,
    UnknownListNameError,
    open_screen_file,
    read_publish_file,
    read_verify_file,
)

NOW = 1_796_000_000  # 2026-11-29
DAY = 86_400
LABELS = ("fraud", "overdue-90", "mule", "identity_theft", "court-order")
FULL_WIDTH = {ord("0") + i: 0xFF10 + i for i in range(10)}  # full-width digits
CST = timezone(timedelta(hours=8))

Rows = Sequence[Mapping[str, object]]


# --- writing files ---------------------------------------------------------------------


def _write(path: Path, rows: Rows, columns: Sequence[str], quoted: bool = False) -> Path:
    if path.suffix == ".parquet":
        table = pa.table({c: [r.get(c) for r in rows] for c in columns})
        pq.write_table(table, path, row_group_size=7)
        return path
    with path.open("w", newline="", encoding="utf-8") as handle:
        writer = csv.writer(handle, quoting=csv.QUOTE_ALL if quoted else csv.QUOTE_MINIMAL)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return path


FORMATS = ["csv", "csv-quoted", "parquet"]


def _file(tmp_path: Path, fmt: str, rows: Rows, columns: Sequence[str]) -> Path:
    suffix = ".parquet" if fmt == "parquet" else ".csv"
    return _write(tmp_path / f"list{suffix}", rows, columns, quoted=fmt == "csv-quoted")


# --- random identifiers in many spellings ----------------------------------------------


def _phone(rng: random.Random) -> tuple[str, str]:
    digits = str(rng.randrange(13 * 10**9, 2 * 10**10))
    spelling = rng.choice(
        [
            digits,
            f"+86 {digits[:3]} {digits[3:7]} {digits[7:]}",
            f"0086-{digits}",
            digits.translate(FULL_WIDTH),
            f" +86({digits[:3]}){digits[3:]} ",
        ]
    )
    return "phone", spelling


def _national_id(rng: random.Random) -> tuple[str, str]:
    first = "".join(rng.choices("0123456789", k=17))
    value = first + id_check_digit(first)
    return "national-id", rng.choice([value, value.lower(), f"{value[:6]} {value[6:]}"])


def _card(rng: random.Random) -> tuple[str, str]:
    while True:
        digits = "".join(rng.choices("0123456789", k=16))
        if luhn_valid(digits) and digits[0] != "0":
            break
    return "card", rng.choice([digits, " ".join(digits[i : i + 4] for i in range(0, 16, 4))])


def _email(rng: random.Random) -> tuple[str, str]:
    user = f"user{rng.randrange(50)}"
    return "email", rng.choice(
        [f"{user}@Example.COM", f"{user}\uff20example.com.", f" {user}@example.com"]
    )


def _identifier(rng: random.Random) -> tuple[str, str]:
    return rng.choice([_phone, _national_id, _card, _email])(rng)


def _time_cell(rng: random.Random) -> tuple[str, int]:
    """A written event time and the unix seconds it stands for (computed, not parsed)."""
    t = NOW - rng.randrange(400 * DAY)
    form = rng.randrange(5)
    if form == 0:
        return str(t), t
    if form == 1:
        return datetime.fromtimestamp(t, CST).isoformat(), t
    if form == 2:
        return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"), t
    if form == 3:
        midnight = t - t % DAY
        return datetime.fromtimestamp(midnight, UTC).date().isoformat(), midnight
    return "", NOW


def _oracle(rows: Rows, default_list: str = "blacklist") -> dict[bytes, ListedEntry]:
    """The expected entries: scalar ``membership_input`` of each raw cell, merged."""
    out: dict[bytes, ListedEntry] = {}
    for row in rows:
        list_name = str(row.get("list") or default_list)
        x = inputs.membership_input(list_name, str(row["type"]), str(row["identifier"]))
        labels = frozenset(
            p.strip().lower() for p in str(row.get("labels") or "").split(";") if p.strip()
        )
        t = row["_t"]
        assert isinstance(t, int)
        old = out.get(x)
        if old is not None:
            labels, t = labels | old.labels, max(t, old.event_time)
        out[x] = ListedEntry(list_name, x, labels, t)
    return out


def _publish_rows(rng: random.Random, n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for _ in range(n):
        if rows and rng.random() < 0.2:  # the same identifier again, maybe spelt differently
            previous = rng.choice(rows)
            kind, value = str(previous["type"]), str(previous["identifier"])
        else:
            kind, value = _identifier(rng)
        cell, t = _time_cell(rng)
        labels = rng.sample(LABELS, rng.randrange(3))
        rows.append(
            {
                "identifier": value,
                "type": kind,
                "labels": ";".join(s.upper() if rng.random() < 0.3 else s for s in labels),
                "event_time": cell,
                "list": rng.choice(["", "blacklist", "graylist", "lending"]),
                "_t": t,
            }
        )
    return rows


# --- publish ---------------------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_publish_round_trip_matches_membership_input(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(f"publish-{fmt}")
    rows = _publish_rows(rng, 300)
    path = _file(tmp_path, fmt, rows, ["identifier", "type", "labels", "event_time", "list"])
    got = read_publish_file(path, now=NOW)
    expected = _oracle(rows)
    assert {e.input: e for e in got} == expected
    assert [e.input for e in got] == list(expected)  # first-occurrence order
    assert len(got) < len(rows)  # the file did repeat identifiers


def test_spellings_of_one_phone_give_the_clean_input_and_merge(tmp_path: Path) -> None:
    spellings = [
        " +86 138 0013 8000 ",
        "0086-13800138000",
        "13800138000".translate(FULL_WIDTH),
        "13800138000",
    ]
    rows = [
        {"identifier": s, "labels": label, "event_time": str(NOW - i * DAY)}
        for i, (s, label) in enumerate(zip(spellings, ["fraud", "", "mule;FRAUD", ""], strict=True))
    ]
    path = _write(tmp_path / "p.csv", rows, ["identifier", "labels", "event_time"])
    (entry,) = read_publish_file(path, now=NOW, default_kind="phone")
    assert entry == ListedEntry(
        "blacklist",
        inputs.membership_input("blacklist", "phone", "+8613800138000"),
        frozenset({"fraud", "mule"}),
        NOW,
    )


def test_merge_keeps_lists_apart_and_latest_time(tmp_path: Path) -> None:
    rows = [
        {
            "identifier": "13800138000",
            "list": "blacklist",
            "labels": "a",
            "event_time": str(NOW - 300),
        },
        {
            "identifier": "+8613800138000",
            "list": "blacklist",
            "labels": "b",
            "event_time": str(NOW - 100),
        },
        {
            "identifier": "13800138000",
            "list": "lending",
            "labels": "c",
            "event_time": str(NOW - 200),
        },
        {
            "identifier": "13800138000",
            "list": "blacklist",
            "labels": "",
            "event_time": str(NOW - 200),
        },
    ]
    path = _write(tmp_path / "p.csv", rows, ["identifier", "list", "labels", "event_time"])
    got = read_publish_file(path, now=NOW, default_kind="phone")
    assert [(e.list_name, e.labels, e.event_time) for e in got] == [
        ("blacklist", frozenset({"a", "b"}), NOW - 100),
        ("lending", frozenset({"c"}), NOW - 200),
    ]


def test_header_is_trimmed_case_insensitive_and_bom_tolerant(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("\ufeffIdentifier , TYPE\n13800138000,phone\n", encoding="utf-8")
    (entry,) = read_publish_file(path, now=NOW)
    assert entry.input == inputs.membership_input("blacklist", "phone", "13800138000")
    assert entry.event_time == NOW and entry.labels == frozenset()


def test_empty_file_publishes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text("identifier,type\n", encoding="utf-8")
    assert read_publish_file(path, now=NOW) == []


def test_parquet_typed_columns(tmp_path: Path) -> None:
    t = [NOW - 5 * DAY, NOW - 3 * DAY]
    table = pa.table(
        {
            "identifier": pa.array([13800138000, 13900139000], pa.int64()),
            "event_time": pa.array([x * 1000 for x in t], pa.timestamp("ms", "UTC")),
        }
    )
    pq.write_table(table, tmp_path / "p.parquet")
    got = read_publish_file(tmp_path / "p.parquet", now=NOW, default_kind="phone")
    assert [e.event_time for e in got] == t
    assert got[0].input == inputs.membership_input("blacklist", "phone", "13800138000")

    days = pa.table(
        {"identifier": ["13800138000"], "event_time": pa.array([t[0] // DAY], pa.date32())}
    )
    pq.write_table(days, tmp_path / "d.parquet")
    (entry,) = read_publish_file(tmp_path / "d.parquet", now=NOW, default_kind="phone")
    assert entry.event_time == t[0] - t[0] % DAY

    naive = pa.table(
        {"identifier": ["13800138000"], "event_time": pa.array([t[0]], pa.timestamp("s"))}
    )
    pq.write_table(naive, tmp_path / "n.parquet")
    with pytest.raises(ListingFileError, match="without a time zone"):
        read_publish_file(tmp_path / "n.parquet", now=NOW, default_kind="phone")

    floats = pa.table({"identifier": pa.array([1.5], pa.float64())})
    pq.write_table(floats, tmp_path / "f.parquet")
    with pytest.raises(ListingFileError, match="'identifier' has Parquet type double"):
        read_publish_file(tmp_path / "f.parquet", now=NOW, default_kind="phone")
    with pytest.raises(ListingFileError, match="'identifier' has Parquet type double"):
        open_screen_file(tmp_path / "f.parquet", default_kind="phone")  # at open, not later


# --- publish errors --------------------------------------------------------------------

SECRET_PHONE = "+86 138 0013 80"  # 9-digit NSN: refused as bad-length
BAD_CELLS = [
    ("identifier", SECRET_PHONE, RefusedIdentifierError),
    ("identifier", "", RefusedIdentifierError),
    ("type", "passport", UnknownKindError),
    ("type", "", MissingKindError),
    ("list", "whitelist", UnknownListNameError),
    ("list", "verify", UnknownListNameError),
    ("event_time", "2026-13-01", BadEventTimeError),
    ("event_time", "2026-11-01T08:00:00", BadEventTimeError),  # no zone
    ("event_time", "1790000000000", BadEventTimeError),  # milliseconds
    ("event_time", str(NOW + 3 * DAY), BadEventTimeError),  # in the future
    ("event_time", "1969-12-31T00:00:00Z", BadEventTimeError),
    ("event_time", "20261130", BadEventTimeError),  # ISO basic date, not unix seconds
    ("labels", "fraud;Bad Label", BadLabelError),
    ("labels", "x" * 65, BadLabelError),
]


@pytest.mark.parametrize(("column", "value", "error"), BAD_CELLS)
@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_each_bad_cell_is_named_with_row_and_column(
    tmp_path: Path, fmt: str, column: str, value: str, error: type[RowError]
) -> None:
    good = {
        "identifier": "13800138000",
        "type": "phone",
        "labels": "",
        "event_time": "",
        "list": "",
    }
    rows = [dict(good), dict(good), dict(good, **{column: value})]
    path = _file(tmp_path, fmt, rows, list(good))
    with pytest.raises(InvalidRowsError) as info:
        read_publish_file(path, now=NOW)
    exc = info.value
    assert exc.total == 1
    (first,) = exc.errors
    assert type(first) is error and isinstance(first, ListingError)
    assert (first.row, first.column, first.file) == (3, column, str(path))
    message = str(exc)
    assert str(path) in message and f"row 3, column {column!r}" in message
    if len(value) >= 8:  # a cell is only ever shown redacted
        assert value not in message and value.strip() not in message


def test_refused_identifier_is_redacted_with_its_reason(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", [{"identifier": "11010519491231002"}], ["identifier"])
    with pytest.raises(InvalidRowsError) as info:
        read_publish_file(path, now=NOW, default_kind="national-id")
    (err,) = info.value.errors
    assert isinstance(err, RefusedIdentifierError)
    try:
        normalise("national-id", "11010519491231002")
    except InvalidIdentifier as ref:
        assert (err.reason, err.redacted) == (ref.reason.value, ref.redacted)
    assert "11010519491231002" not in str(info.value) and "***1002" in str(info.value)


def test_all_bad_rows_reported_up_to_the_cap(tmp_path: Path) -> None:
    rng = random.Random(7)
    rows: list[dict[str, object]] = []
    bad_rows = []
    for i in range(1, 61):
        if i % 2:
            rows.append({"identifier": "13800138000", "labels": "ok"})
        else:
            rows.append({"identifier": str(rng.randrange(10**4)), "labels": "not ok"})
            bad_rows.append(i)
    path = _write(tmp_path / "p.csv", rows, ["identifier", "labels"])
    with pytest.raises(InvalidRowsError) as info:
        read_publish_file(path, now=NOW, default_kind="phone")
    exc = info.value
    assert exc.total == 2 * len(bad_rows)  # identifier and labels of each bad row
    assert len(exc.errors) == MAX_REPORTED
    assert [(e.row, e.column) for e in exc.errors] == [
        (r, c) for r in bad_rows for c in ("identifier", "labels")
    ][:MAX_REPORTED]
    assert f"and {exc.total - MAX_REPORTED} more" in str(exc)


def test_header_and_file_errors(tmp_path: Path) -> None:
    def write(name: str, text: str) -> Path:
        (tmp_path / name).write_text(text, encoding="utf-8")
        return tmp_path / name

    with pytest.raises(MissingColumnError, match="'type'"):
        read_publish_file(write("a.csv", "identifier\n13800138000\n"), now=NOW)
    with pytest.raises(MissingColumnError, match="'identifier'"):
        read_publish_file(write("b.csv", "phone\n13800138000\n"), now=NOW, default_kind="phone")
    with pytest.raises(UnknownColumnError, match="'lables'") as info:
        read_publish_file(write("c.csv", "identifier,lables\n1,a\n"), now=NOW, default_kind="phone")
    assert info.value.columns == ("lables",)
    with pytest.raises(DuplicateColumnError):
        read_publish_file(
            write("d.csv", "identifier,Identifier\n1,1\n"), now=NOW, default_kind="phone"
        )
    with pytest.raises(ListingFileError, match="line 3"):
        read_publish_file(write("e.csv", "identifier\n1\n1,2\n"), now=NOW, default_kind="phone")
    with pytest.raises(ListingFileError, match=r"\.csv or \.parquet"):
        read_publish_file(write("f.txt", "identifier\n"), now=NOW, default_kind="phone")
    with pytest.raises(ListingFileError, match="does not exist"):
        read_publish_file(tmp_path / "missing.csv", now=NOW, default_kind="phone")
    with pytest.raises(ListingFileError, match="not a Parquet file"):
        read_publish_file(write("g.parquet", "identifier\n"), now=NOW, default_kind="phone")


def test_caller_errors_are_not_file_errors(tmp_path: Path) -> None:
    path = _write(tmp_path / "p.csv", [{"identifier": "13800138000"}], ["identifier"])
    with pytest.raises(inputs.UnknownListError):
        read_publish_file(path, now=NOW, default_kind="phone", default_list="verify")
    with pytest.raises(UnknownIdentifierKind):
        read_publish_file(path, now=NOW, default_kind="passport")
    with pytest.raises(ValueError, match="now"):
        read_publish_file(path, now=-1, default_kind="phone")
    with pytest.raises(ValueError, match="country"):
        read_publish_file(path, now=NOW, default_kind="phone", country="999")


# --- element verification --------------------------------------------------------------


@pytest.mark.parametrize("fmt", FORMATS)
def test_verify_file_matches_element_input(tmp_path: Path, fmt: str) -> None:
    rng = random.Random(f"verify-{fmt}")
    rows: list[dict[str, object]] = []
    for i in range(60):
        id_kind, id_value = _national_id(rng) if i % 3 else _phone(rng)
        row: dict[str, object] = {"id": id_value, "id_type": id_kind}
        if rng.random() < 0.7:
            row["name"] = rng.choice(
                ["Zhang San", "\uff3a\uff28\uff21\uff2e\uff27\u3000san", "Li  Si", "  "]
            )
        if rng.random() < 0.7:
            row["phone"] = _phone(rng)[1]
        if rng.random() < 0.5:
            row["card"] = _card(rng)[1]
        if rng.random() < 0.5:
            row["email"] = _email(rng)[1]
        rows.append(row)
    rows.append(dict(rows[0]))  # an exact repeat gives no new entry
    columns = ["id", "id_type", "name", "phone", "card", "email"]
    got = read_verify_file(_file(tmp_path, fmt, rows, columns), now=NOW)
    expected = {
        inputs.element_input(str(r["id_type"]), str(r["id"]), f, str(r[f])): None
        for f in columns[2:]
        for r in rows
        if str(r.get(f) or "").strip()
    }
    assert {e.input for e in got} == set(expected)
    assert len(got) == len({e.input for e in got})
    assert all(
        e.list_name == "verify" and e.labels == frozenset() and e.event_time == NOW for e in got
    )


def test_verify_file_errors(tmp_path: Path) -> None:
    rows = [
        {"id": "11010519491231002X", "phone": "13800138000", "card": "4111111111111112"},
        {"id": "11010519491231002Y", "phone": "", "card": ""},
    ]
    path = _write(tmp_path / "v.csv", rows, ["id", "phone", "card"])
    with pytest.raises(InvalidRowsError) as info:
        read_verify_file(path, now=NOW, default_kind="national-id")
    assert [(e.row, e.column, type(e)) for e in info.value.errors] == [
        (1, "card", RefusedIdentifierError),
        (2, "id", RefusedIdentifierError),
    ]
    assert "4111111111111112" not in str(info.value)

    only_id = _write(tmp_path / "w.csv", [{"id": "13800138000"}], ["id"])
    with pytest.raises(MissingColumnError, match="element"):
        read_verify_file(only_id, now=NOW, default_kind="phone")
    labelled = _write(tmp_path / "x.csv", [{"id": "1", "name": "a"}], ["id", "name", "labels"])
    with pytest.raises(UnknownColumnError):
        read_verify_file(labelled, now=NOW, default_kind="phone")


# --- screening -------------------------------------------------------------------------


def _screen_rows(rng: random.Random, n: int) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = []
    for _ in range(n):
        kind, value = _identifier(rng)
        roll = rng.random()
        if roll < 0.1:
            value = value[: len(value) // 2]  # mostly refused
        elif roll < 0.15:
            kind = "passport"
        elif roll < 0.2:
            kind = ""  # falls back to the default kind (phone)
        rows.append({"identifier": value, "type": kind})
    return rows


def _expected_screen(rows: Rows, list_name: str) -> list[tuple[int, bytes | None, str | None]]:
    """Per row (from 1): the input to query, or the reason it is skipped."""
    out: list[tuple[int, bytes | None, str | None]] = []
    for i, row in enumerate(rows, start=1):
        kind = str(row["type"]) or "phone"
        if kind == "passport":
            out.append((i, None, "unknown-type"))
            continue
        try:
            out.append((i, inputs.membership_input(list_name, kind, str(row["identifier"])), None))
        except InvalidIdentifier as exc:
            out.append((i, None, exc.reason.value))
    return out


@pytest.mark.parametrize("fmt", FORMATS)
def test_screen_keeps_order_and_skips_bad_rows_with_reasons(tmp_path: Path, fmt: str) -> None:
    rows = _screen_rows(random.Random(f"screen-{fmt}"), 250)
    path = _file(tmp_path, fmt, rows, ["identifier", "type"])
    screen = open_screen_file(path, list_name="graylist", default_kind="phone", chunk_rows=40)
    assert screen.total_rows == len(rows)
    got: list[tuple[int, bytes | None, str | None]] = []
    next_row = 1
    for chunk in screen:
        assert chunk.first_row == next_row and chunk.row_count <= 40
        rows_here = [q.row for q in chunk.queries] + [s.row for s in chunk.skipped]
        assert sorted(rows_here) == list(range(chunk.first_row, chunk.first_row + chunk.row_count))
        assert [q.row for q in chunk.queries] == sorted(q.row for q in chunk.queries)
        got += [(q.row, q.input, None) for q in chunk.queries]
        for s in chunk.skipped:
            reason = s.reason if isinstance(s, RefusedIdentifierError) else s.code
            got.append((s.row, None, reason))
            value = str(rows[s.row - 1]["identifier"])
            assert s.column in ("identifier", "type") and str(path) in str(s)
            if len(value) >= 8:
                assert value not in str(s)
        next_row += chunk.row_count
    assert next_row == len(rows) + 1
    expected = _expected_screen(rows, "graylist")
    assert sorted(got, key=lambda g: g[0]) == expected
    assert any(reason for _, _, reason in expected) and any(x for _, x, _ in expected)


def test_screen_chunks_do_not_change_results(tmp_path: Path) -> None:
    rows = _screen_rows(random.Random(3), 101)
    path = _write(tmp_path / "s.parquet", rows, ["identifier", "type"])

    def flat(chunk_rows: int) -> tuple[list[tuple[int, bytes]], list[str], list[int]]:
        chunks = list(open_screen_file(path, default_kind="phone", chunk_rows=chunk_rows))
        queries = [(q.row, q.input) for c in chunks for q in c.queries]
        skipped = [str(s) for c in chunks for s in c.skipped]
        return queries, skipped, [c.row_count for c in chunks]

    q1, s1, sizes1 = flat(1)
    q2, s2, sizes2 = flat(10)
    q3, s3, sizes3 = flat(1000)
    assert q1 == q2 == q3 and s1 == s2 == s3
    assert sizes1 == [1] * 101 and sizes2 == [10] * 10 + [1] and sizes3 == [101]


def test_screen_header_errors_are_fatal(tmp_path: Path) -> None:
    path = _write(tmp_path / "s.csv", [{"identifier": "1", "name": "x"}], ["identifier", "name"])
    with pytest.raises(UnknownColumnError):
        open_screen_file(path, default_kind="phone")
    path = _write(tmp_path / "t.csv", [{"identifier": "1"}], ["identifier"])
    with pytest.raises(MissingColumnError, match="'type'"):
        open_screen_file(path)
    with pytest.raises(inputs.UnknownListError):
        open_screen_file(path, list_name="verify", default_kind="phone")


# --- size ------------------------------------------------------------------------------


def test_hundred_thousand_rows_read_and_screen(tmp_path: Path) -> None:
    """10^5 rows through the vectorised path; a sample checked against the scalar rule."""
    rng = random.Random(11)
    n = 100_000
    numbers = rng.sample(range(13 * 10**9, 2 * 10**10), n)
    formats = ["{}", "+86 {}", "0086-{}", "{}-"]
    path = tmp_path / "big.csv"
    with path.open("w", encoding="utf-8") as handle:
        handle.write("identifier,labels\n")
        for i, number in enumerate(numbers):
            handle.write(f"{formats[i % 4].format(number)},{LABELS[i % 5]}\n")
    entries = read_publish_file(path, now=NOW, default_kind="phone")
    assert len(entries) == n  # distinct numbers, so nothing merges
    for i in rng.sample(range(n), 200):
        assert entries[i].input == inputs.membership_input("blacklist", "phone", str(numbers[i]))
        assert entries[i].labels == {LABELS[i % 5]}
    screen_path = tmp_path / "book.csv"
    screen_path.write_text(
        "identifier\n" + "".join(f"{formats[i % 4].format(x)}\n" for i, x in enumerate(numbers)),
        encoding="utf-8",
    )
    chunks = list(open_screen_file(screen_path, default_kind="phone"))
    assert [(c.row_count, len(c.queries), len(c.skipped)) for c in chunks] == [
        (10_000, 10_000, 0)
    ] * 10
    assert [q.input for c in chunks for q in c.queries] == [e.input for e in entries]


def test_csv_row_numbers_survive_quoted_line_breaks_and_blank_lines(tmp_path: Path) -> None:
    path = tmp_path / "p.csv"
    path.write_text(
        'identifier,type\n"13800138000\n",phone\n12345,phone\n"",phone\n', encoding="utf-8"
    )  # row 1 spans lines 2-3; row 3 is an empty quoted identifier
    with pytest.raises(InvalidRowsError) as info:
        read_publish_file(path, now=NOW, default_kind="phone")
    assert [(e.row, e.column) for e in info.value.errors] == [(2, "identifier"), (3, "identifier")]
    (chunk,) = open_screen_file(path, default_kind="phone")
    assert [q.row for q in chunk.queries] == [1]
    assert [(s.row, getattr(s, "reason", None)) for s in chunk.skipped] == [
        (2, "bad-length"),
        (3, "empty"),
    ]
    blank = tmp_path / "b.csv"
    blank.write_text("identifier\n13800138000\n\n13900139000\n", encoding="utf-8")
    with pytest.raises(ListingFileError, match="line 3"):
        open_screen_file(blank, default_kind="phone")


def test_overlong_identifier_is_refused_so_inputs_stay_evaluable(tmp_path: Path) -> None:
    long_name = "zhang " * 700  # 4200 bytes after normalisation: over MAX_IDENTIFIER_BYTES
    rows = [{"identifier": "ok name", "type": "text"}, {"identifier": long_name, "type": "text"}]
    path = _write(tmp_path / "p.csv", rows, ["identifier", "type"])
    with pytest.raises(InvalidRowsError) as info:
        read_publish_file(path, now=NOW)
    (err,) = info.value.errors
    assert isinstance(err, RefusedIdentifierError)
    assert (err.row, err.reason) == (2, "too-long")
    fits = _write(tmp_path / "q.csv", [{"identifier": "x" * MAX_IDENTIFIER_BYTES}], ["identifier"])
    (entry,) = read_publish_file(fits, now=NOW, default_kind="text")
    assert entry.input == inputs.membership_input("blacklist", "text", "x" * MAX_IDENTIFIER_BYTES)
