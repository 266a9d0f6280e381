"""Dataset import throughput and peak memory, as JSON, against baselines in the same run.

For each row count N a CSV of synthetic accounts is generated (``account`` like
"AC0001234567", ``balance`` and ``age`` integers, ``region`` one of eight strings).
Then, each in a fresh child process so that its peak RSS (``ru_maxrss``) is that
measurement's own:

- ``import``: ``node.datasets.import_csv``, the whole path a registration takes before
  storing: read, infer types, convert, commit (salted leaves and Merkle root, on
  worker processes for big files). Peak RSS of the importing process and of the
  largest hashing worker.
- ``read_csv``: plain ``pyarrow.csv.read_csv`` of the same file, the floor of reading
  it at all.

And in this process the row-wise reference the import replaced, ``row_leaf_hashes``
plus ``merkle.root`` over ``to_pylist()`` rows, on the first M rows (all of them when
N is small): its time (the commitment alone, not reading the file or building the
dicts, so it flatters the old path) is extrapolated to N, and its root must equal the
new path's root over the same M rows under the same key.

    .venv/bin/python -m scripts.bench.dataset_import [--rows 1000000 10000000] [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pa_csv

from ledger import merkle
from ledger.rows import row_leaf_hashes
from scripts.bench.machine import machine

REGIONS = ["north", "south", "east", "west", "centre", "islands", "abroad", "unknown"]
COLUMNS = {"account": "string", "balance": "integer", "region": "string", "age": "integer"}
QUICK_ROWS = [3000]  # --quick: small enough for the test suite
QUICK_REFERENCE_ROWS = 3000
KEY = bytes(range(32))  # a fixed version key, so the child's root can be checked here
_GENERATE_BLOCK = 1_000_000


def write_csv(path: Path, rows: int, seed: int) -> None:
    """N synthetic rows, generated and written column-wise; no quotes anywhere."""
    rng = np.random.default_rng(seed)
    regions = pa.array(REGIONS)
    schema = pa.schema([(name, pa.string()) for name in COLUMNS])
    with path.open("wb") as out:
        out.write((",".join(COLUMNS) + "\n").encode())
        options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
        with pa_csv.CSVWriter(out, schema, write_options=options) as writer:
            for start in range(0, rows, _GENERATE_BLOCK):
                n = min(_GENERATE_BLOCK, rows - start)
                digits = pc.cast(pa.array(rng.integers(0, 10**10, n)), pa.string())
                columns = [
                    pc.binary_join_element_wise("AC", pc.utf8_lpad(digits, 10, "0"), ""),
                    pc.cast(pa.array(rng.integers(-(10**6), 10**9, n)), pa.string()),
                    regions.take(pa.array(rng.integers(0, len(REGIONS), n))),
                    pc.cast(pa.array(rng.integers(18, 90, n)), pa.string()),
                ]
                writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def child() -> None:
    """One measurement in this fresh process; prints its JSON figures."""
    what, path = sys.argv[1], Path(sys.argv[2])
    figures: dict[str, Any] = {}
    if what == "import":
        from node.datasets import MAX_WORKERS, import_csv

        start = time.perf_counter()
        data = import_csv(path, KEY)
        figures["seconds"] = time.perf_counter() - start
        figures.update(rows=data.row_count, root=data.merkle_root.hex())
        figures["workers"] = min(len(os.sched_getaffinity(0)), MAX_WORKERS)
    else:
        start = time.perf_counter()
        table = pa_csv.read_csv(path)
        figures["seconds"] = time.perf_counter() - start
        figures["rows"] = table.num_rows
    figures["peak_rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    # The largest worker process that has ended (ru_maxrss is a maximum, not a sum);
    # small files are hashed in-process, without workers.
    workers_peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    figures["workers_peak_rss_mib"] = workers_peak
    if not workers_peak:
        figures["workers"] = 0
    print(json.dumps(figures))


def in_child(what: str, path: Path) -> dict[str, Any]:
    # `-c`, not this module as a script: the import's spawned hashing workers then
    # re-import no main module, as in the node, whose main module is a small script.
    code = "from scripts.bench.dataset_import import child; child()"
    done = subprocess.run(
        [sys.executable, "-c", code, what, str(path)], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(f"{what} child failed:\n{done.stderr}")
    figures: dict[str, Any] = json.loads(done.stdout)
    return figures


def head(path: Path, rows: int, out: Path) -> None:
    """The header and first `rows` lines of a CSV."""
    with path.open("rb") as source, out.open("wb") as target:
        for _ in range(rows + 1):
            line = source.readline()
            if not line:
                break
            target.write(line)


def reference(path: Path) -> tuple[float, bytes, int]:
    """The row-wise commitment the import replaced: seconds, root, rows."""
    types = {n: pa.int64() if t == "integer" else pa.string() for n, t in COLUMNS.items()}
    rows = pa_csv.read_csv(path, convert_options=pa_csv.ConvertOptions(column_types=types))
    dicts = rows.to_pylist()
    start = time.perf_counter()
    root = merkle.root(row_leaf_hashes(KEY, dicts))
    return time.perf_counter() - start, root, len(dicts)


def measure_one(rows: int, reference_rows: int, seed: int, directory: Path) -> dict[str, Any]:
    path = directory / f"accounts-{rows}.csv"
    start = time.perf_counter()
    write_csv(path, rows, seed)
    generated_s = time.perf_counter() - start
    size = path.stat().st_size
    imported = in_child("import", path)
    read = in_child("read_csv", path)
    sample = path
    if reference_rows < rows:
        sample = directory / f"accounts-{rows}-head.csv"
        head(path, reference_rows, sample)
    ref_s, ref_root, ref_rows = reference(sample)
    if sample == path:
        new_root = bytes.fromhex(imported["root"])
    else:
        from node.datasets import import_csv

        new_root = import_csv(sample, KEY).merkle_root
    ref_per_s = ref_rows / ref_s if ref_s > 0 else float("inf")
    extrapolated = rows / ref_per_s
    path.unlink()
    if sample != path:
        sample.unlink()
    workers = imported["workers"]
    return {
        "rows": rows,
        "file_bytes": size,
        "generate_seconds": round(generated_s, 3),
        "import": {
            "seconds": round(imported["seconds"], 3),
            "rows_per_s": round(rows / imported["seconds"]),
            "peak_rss_mib": round(imported["peak_rss_mib"], 1),
            "workers": workers,
            "workers_peak_rss_mib": round(imported["workers_peak_rss_mib"], 1),
            # Every process at its own peak at once: an upper bound of the total.
            "total_peak_rss_mib_bound": round(
                imported["peak_rss_mib"] + workers * imported["workers_peak_rss_mib"], 1
            ),
            "root": imported["root"],
        },
        "read_csv": {
            "seconds": round(read["seconds"], 3),
            "rows_per_s": round(rows / read["seconds"]),
            "peak_rss_mib": round(read["peak_rss_mib"], 1),
        },
        "row_wise_reference": {
            "rows": ref_rows,
            "seconds": round(ref_s, 3),
            "rows_per_s": round(ref_per_s),
            "extrapolated_seconds": round(extrapolated, 2),
            "root_equals_new_path": ref_root == new_root,
        },
        "import_over_read_csv": round(imported["seconds"] / read["seconds"], 2),
        "reference_over_import": round(extrapolated / imported["seconds"], 2),
    }


def measure(rows: Sequence[int], reference_rows: int, seed: int = 1) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="provnet-bench-") as tmp:
        runs = [measure_one(n, min(n, reference_rows), seed, Path(tmp)) for n in rows]
    return {
        "benchmark": "dataset-import",
        "machine": machine(("pyarrow", "numpy")),
        "inputs": {
            "rows": list(rows),
            "reference_rows": reference_rows,
            "seed": seed,
            "columns": COLUMNS,
            "version_key": "fixed test key (0x0001..1f)",
        },
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000])
    parser.add_argument(
        "--reference-rows",
        type=int,
        default=100_000,
        help="rows the slow row-wise reference runs on (its time is extrapolated)",
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for tests")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    if any(r < 1 for r in args.rows) or args.reference_rows < 1:
        parser.error("--rows and --reference-rows must be >= 1")
    rows, reference_rows = (
        (QUICK_ROWS, QUICK_REFERENCE_ROWS) if args.quick else (args.rows, args.reference_rows)
    )
    print(json.dumps(measure(rows, reference_rows, args.seed), indent=2, sort_keys=True))


if __name__ == "__main__":
    main()
