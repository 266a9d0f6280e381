"""`provnet auditor index`: run the indexer from the command line.

``--once`` indexes up to the confirmed head and prints the index status as JSON (for
scripts and cron); without it the indexer follows the chain until SIGINT/SIGTERM,
logging one line per page or rollback.
"""

from __future__ import annotations

import argparse
import json
import logging
import signal
import sys
import threading
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from auditor.index.follower import Step


def add_index_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", required=True, help="JSON-RPC URL of the node (http://...)")
    parser.add_argument("--manifest", required=True, type=Path, help="deployment manifest")
    parser.add_argument("--database", required=True, help="SQLAlchemy URL, e.g. sqlite:///index.db")
    parser.add_argument(
        "--confirmations",
        type=_non_negative,
        default=None,
        help="blocks behind head (default: the chain's `finalized` block, else 12)",
    )
    parser.add_argument("--page-size", type=_positive, default=2000, help="blocks per page")
    parser.add_argument("--once", action="store_true", help="catch up, print status, exit")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between polls")


def _non_negative(text: str) -> int:
    value = int(text)
    if value < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {value}")
    return value


def _positive(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def auditor_index(args: argparse.Namespace) -> int:
    # Imported here: the CLI builds its parser (and this module's arguments) on every
    # run, and these pull in SQLAlchemy, Alembic and the ABI codec.
    from auditor.index.follower import Follower
    from auditor.index.rpc import Rpc
    from auditor.index.store import IndexStore
    from ledger.deployment import Deployment

    deployment = Deployment.load(Path(args.manifest))
    deployment.check_artifacts()
    rpc = Rpc(args.chain)
    store = IndexStore(args.database)
    try:
        follower = Follower(
            rpc, store, deployment, confirmations=args.confirmations, page_size=args.page_size
        )
        if args.once:
            follower.catch_up()
            print(json.dumps(follower.status().to_json(), indent=2))
            return 0
        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
        stop = threading.Event()

        def _stop(_signum: int, _frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGINT, _stop)
        signal.signal(signal.SIGTERM, _stop)

        def _report(step: Step) -> None:
            if step.kind == "indexed":
                print(f"indexed blocks {step.first}..{step.last}: {step.events} events", flush=True)
            elif step.kind == "rolled_back":
                print(f"reorg: rolled back blocks {step.first}..{step.last}", flush=True)

        print(f"indexing {args.chain} into {store.engine.url!r}", file=sys.stderr, flush=True)
        follower.run(stop, poll_seconds=args.poll, on_step=_report)
        return 0
    finally:
        rpc.close()
        store.close()
