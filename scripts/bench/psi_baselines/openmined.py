"""openmined-psi 2.0.6 (ECDH on P-256) on two sets, as one JSON object on stdout.

The established ECDH-PSI library, run as its README shows: the server (responder, set B)
makes a setup message from its items (a Golomb-compressed set, false-positive rate
``--fpr`` over the whole query), the client (requester, set A) sends a request, the
server answers it, and the client reads the intersection (``--mode intersection``) or
only its size (``--mode cardinality``). Each message is a protobuf; its serialised size
is what would cross the wire, and every message is serialised and parsed as it would be
between two machines. Both roles run one after the other in this one process on one
core (the library is single-threaded), which is how its own benchmarks run it.

Per item that is 4 P-256 operations (client blind, server blind, server re-blind,
client unblind) and one hash-to-curve per side, the same count as provnet's ECDH mode.

    .venv-psi-baselines/bin/python -m scripts.bench.psi_baselines.openmined \\
        --a A.txt --b B.txt [--mode intersection|cardinality] [--fpr 1e-9]
"""

from __future__ import annotations

import argparse
import json
import time
from importlib import metadata
from typing import Any

import private_set_intersection.python as openmined  # type: ignore[import-not-found]

from scripts.bench.psi_baselines.common import (
    current_rss_mb,
    intersection_digest,
    peak_rss_mb,
    read_items,
)


def run(items_a: list[str], items_b: list[str], mode: str, fpr: float) -> dict[str, Any]:
    reveal = mode == "intersection"
    steps: dict[str, float] = {}
    sizes: dict[str, int] = {}

    def step(name: str, start: float) -> float:
        now = time.perf_counter()
        steps[name] = round(now - start, 4)
        return now

    start = t = time.perf_counter()
    client = openmined.client.CreateWithNewKey(reveal)
    server = openmined.server.CreateWithNewKey(reveal)
    setup = server.CreateSetupMessage(
        fpr, len(items_a), items_b, openmined.DataStructure.GCS
    ).SerializeToString()
    t = step("server_setup", t)
    request = client.CreateRequest(items_a).SerializeToString()
    t = step("client_request", t)
    response = server.ProcessRequest(openmined.Request.FromString(request)).SerializeToString()
    t = step("server_response", t)
    setup_msg = openmined.ServerSetup.FromString(setup)
    response_msg = openmined.Response.FromString(response)
    result: dict[str, Any]
    if reveal:
        indices = client.GetIntersection(setup_msg, response_msg)
        matched = [items_a[i] for i in indices]
        result = {
            "intersection_size": len(set(matched)),
            "intersection_sha256": intersection_digest(matched),
        }
    else:
        result = {"intersection_size": client.GetIntersectionSize(setup_msg, response_msg)}
    t = step("client_result", t)
    seconds = t - start
    sizes = {"setup": len(setup), "request": len(request), "response": len(response)}
    return {
        "seconds": round(seconds, 4),
        "steps_seconds": steps,
        "bytes": sum(sizes.values()),
        "bytes_by_message": sizes,
        **result,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--a", required=True, help="requester's items, one per line")
    parser.add_argument("--b", required=True, help="responder's items, one per line")
    parser.add_argument("--mode", choices=("intersection", "cardinality"), default="intersection")
    parser.add_argument("--fpr", type=float, default=1e-9)
    args = parser.parse_args()
    items_a, items_b = read_items(args.a), read_items(args.b)
    rss_at_start = current_rss_mb()
    report = run(items_a, items_b, args.mode, args.fpr)
    report.update(
        {
            "library": "openmined-psi " + metadata.version("openmined-psi"),
            "curve": "P-256",
            "mode": args.mode,
            "data_structure": "GCS",
            "fpr": args.fpr,
            "processes": 1,
            "n_a": len(items_a),
            "n_b": len(items_b),
            "rss_at_start_mb": rss_at_start,
            "peak_rss_mb": peak_rss_mb(),
        }
    )
    print(json.dumps(report, sort_keys=True))


if __name__ == "__main__":
    main()
