"""`provnet lookup ...`: anonymous lookups, spoken to the node's own REST API.

Like the other operator verbs (``operator_command.py``), each verb reads the node's
config for the API address and token and lets the node do the work; the CLI holds no
key and no list. The order of steps is in :data:`STEPS` (shown by `provnet lookup
--help`).
"""

from __future__ import annotations

import argparse
import csv
import json
import re
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

from ledger.ids import InvalidInput

__all__ = ["STEPS", "add_lookup_verbs"]

STEPS = """\
Anonymous lookups, in order (docs/lookup.md):
  0. set-up, once per list: every node of the list gets the same roster file
     ({"version": 1, "list_name", "t", "providers": [node, ...], "relay": node,
     "quorum"}) named in a "lookup" section of its node.json ({"rosters": [FILE]});
     restart the nodes. The relay's organisation registers a dataset standing for the
     service (provnet dataset register --name lookup-service ...) and grants each
     querying bank quota blocks on it (provnet grant create --dataset lookup-service
     --grantee BANK --purpose account-opening --max-uses BLOCKS ...).
  1. each provider:  provnet lookup publish FILE --list L      (its list for the next epoch)
  2. the relay:      provnet lookup epoch --list L             (DKG, build, anchor, accept)
  3. a bank:         provnet lookup query ID --list L --grant GRANT_ID
                     provnet lookup screen BOOK.csv --out results.csv --list L --grant GRANT_ID
  4. a regulator:    provnet lookup audit --node RELAY_OR_PROVIDER_ADDRESS
Republish and rerun step 2 for every new epoch; old epochs stop answering.
"""

_ELEMENT = re.compile(r"^([a-z-]+)=(.*)$", re.S)


def _request(config: Path, method: str, path: str, **kwargs: Any) -> Any:
    """The node API call of ``operator_command`` (imported here: keeps --help fast)."""
    from scripts.operator_command import _request as request

    return request(config, method, path, **kwargs)


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def _list_path(list_name: str) -> str:
    return quote(list_name, safe="")


def lookup_status(args: argparse.Namespace) -> int:
    _print(_request(args.config, "GET", "/lookup"))
    return 0


def lookup_publish(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise InvalidInput("file", f"{path} does not exist")
    with path.open("rb") as fh:
        answer = _request(
            args.config,
            "POST",
            f"/lookup/{_list_path(args.list)}/publish",
            data={"verify": "true" if args.verify else "false", "type": args.type or ""},
            files={"file": (path.name, fh)},
        )
    _print(answer)
    print(f"{answer['entries']} entries pending; next: {answer['next']}", file=sys.stderr)
    return 0


def lookup_epoch(args: argparse.Namespace) -> int:
    print(f"running the next epoch of {args.list} (this takes a while)", file=sys.stderr)
    answer = _request(args.config, "POST", f"/lookup/{_list_path(args.list)}/epochs")
    _print(answer)
    print(
        f"epoch {answer['epoch']} digest {answer.get('descriptorDigest')}: accepted by "
        f"{len(answer.get('acceptedBy', []))} providers; next: {answer['next']}",
        file=sys.stderr,
    )
    return 0


def _elements(values: list[str]) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        match = _ELEMENT.match(value)
        if match is None:
            raise InvalidInput(
                "--element", f"expected name=value (e.g. phone=138...), got {value!r}"
            )
        out[match.group(1)] = match.group(2)
    return out


def lookup_query(args: argparse.Namespace) -> int:
    body: dict[str, Any] = {
        "listName": args.list,
        "identifier": args.identifier,
        "type": args.type,
        "kind": args.kind,
        "purpose": args.purpose,
        "grantId": args.grant,
    }
    if args.element:
        body["elements"] = _elements(args.element)
    if args.own_time is not None:
        body["ownEventTime"] = args.own_time
    if args.epoch is not None:
        body["epoch"] = args.epoch
    _print(_request(args.config, "POST", "/lookup/query", json=body))
    return 0


def _bar(status: dict[str, Any]) -> str:
    total, rows = int(status.get("totalRows") or 0), int(status.get("rows") or 0)
    width = 30
    filled = width if not total else min(width, rows * width // total)
    return (
        f"\r[{'#' * filled}{'.' * (width - filled)}] {rows}/{total} rows, "
        f"{status.get('listed', 0)} listed, {status.get('skipped', 0)} skipped"
    )


def _write_results(source: Path, results: list[dict[str, Any]], out: Path) -> None:
    """Each row's result next to it: the source's columns (CSV) or its row number."""
    by_row = {int(r["row"]): r for r in results}
    extra = ["listed", "multiplicity", "skipped"]

    def cells(row: int) -> list[str]:
        r = by_row.get(row, {})
        if "skipped" in r:
            return ["", "", str(r["skipped"])]
        if not r:
            return ["", "", "no result"]
        return [str(r["listed"]).lower(), str(r["multiplicity"]), ""]

    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        if source.suffix.lower() == ".csv":
            with source.open(newline="", encoding="utf-8-sig") as src:
                reader = csv.reader(src)
                header = next(reader, [])
                writer.writerow([*header, *extra])
                for number, row in enumerate(reader, start=1):
                    writer.writerow([*row, *cells(number)])
        else:
            writer.writerow(["row", *extra])
            for number in sorted(by_row):
                writer.writerow([number, *cells(number)])


def lookup_screen(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise InvalidInput("file", f"{path} does not exist")
    with path.open("rb") as fh:
        job = _request(
            args.config,
            "POST",
            "/lookup/screens",
            data={
                "listName": args.list,
                "purpose": args.purpose,
                "grantId": args.grant,
                "type": args.type or "",
            },
            files={"file": (path.name, fh)},
        )
    job_path = f"/lookup/screens/{job['jobId']}"
    while True:
        status = _request(args.config, "GET", job_path, params={"results": "false"})
        print(_bar(status), end="", file=sys.stderr, flush=True)
        if status["state"] != "running":
            break
        time.sleep(args.poll)
    print(file=sys.stderr)
    if status["state"] != "done":
        raise InvalidInput("screen", f"the screening job failed: {status.get('error')}")
    status = _request(args.config, "GET", job_path)
    _write_results(path, status.pop("results"), args.out)
    status["out"] = str(args.out)
    _print(status)
    return 0


def lookup_audit(args: argparse.Namespace) -> int:
    report = _request(args.config, "GET", "/lookup/audit", params={"node": args.node})
    _print(report)
    return 0 if report.get("verified") else 1


def add_lookup_verbs(sub: Any, config_arg: Any, handler: Any) -> None:
    """`provnet lookup ...`; ``handler(name)`` makes a lazily imported handler."""
    lookup = sub.add_parser(
        "lookup",
        help="anonymous blacklist lookups, element verification, multi-head counts",
        description=STEPS,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = lookup.add_subparsers(dest="action", required=True)

    status = verbs.add_parser("status", help="the lists this node takes part in, and its roles")
    config_arg(status)
    status.set_defaults(handler=handler("lookup_status"))

    publish = verbs.add_parser(
        "publish",
        help="step 1 (provider): a list file for the next epoch (docs/lookup-files.md)",
    )
    config_arg(publish)
    publish.add_argument("file", type=Path, help="CSV or Parquet: identifier,type,labels,...")
    publish.add_argument("--list", default="blacklist", help="the roster's list name")
    publish.add_argument(
        "--verify", action="store_true", help="an element-verification file (id,id_type,name,...)"
    )
    publish.add_argument("--type", help="identifier kind of rows without a type column")
    publish.set_defaults(handler=handler("lookup_publish"))

    epoch = verbs.add_parser(
        "epoch", help="step 2 (relay): run the next epoch: DKG, publish, build, anchor, accept"
    )
    config_arg(epoch)
    epoch.add_argument("--list", default="blacklist", help="the roster's list name")
    epoch.set_defaults(handler=handler("lookup_epoch"))

    query = verbs.add_parser("query", help="step 3 (bank): one anonymous lookup")
    config_arg(query)
    query.add_argument("identifier", metavar="ID", help="the identifier, as you hold it")
    query.add_argument("--type", default="phone", help="identifier kind (default phone)")
    query.add_argument("--kind", default="blacklist", choices=("blacklist", "verify", "multihead"))
    query.add_argument("--list", default="blacklist", help="the roster's list name")
    query.add_argument("--purpose", default="account-opening", help="purpose code (metered)")
    query.add_argument("--grant", required=True, help="your grant id from the relay's org")
    query.add_argument(
        "--element", action="append", default=[], metavar="NAME=VALUE", help="verify: elements"
    )
    query.add_argument(
        "--own-time", type=int, help="multihead: your own latest listing's unix time (excluded)"
    )
    query.add_argument("--epoch", type=int, help="pin an epoch (default: the current one)")
    query.set_defaults(handler=handler("lookup_query"))

    screen = verbs.add_parser(
        "screen", help="step 3 (bank): screen a book of identifiers, results per row"
    )
    config_arg(screen)
    screen.add_argument("file", type=Path, help="CSV or Parquet: identifier[,type]")
    screen.add_argument("--out", type=Path, required=True, help="results CSV to write")
    screen.add_argument("--list", default="blacklist", help="the roster's list name")
    screen.add_argument("--purpose", default="account-opening", help="purpose code (metered)")
    screen.add_argument("--grant", required=True, help="your grant id from the relay's org")
    screen.add_argument("--type", help="identifier kind of rows without a type column")
    screen.add_argument("--poll", type=float, default=1.0, help=argparse.SUPPRESS)
    screen.set_defaults(handler=handler("lookup_screen"))

    audit = verbs.add_parser(
        "audit", help="step 4 (regulator): verify a node's query logs, count per org and day"
    )
    config_arg(audit)
    audit.add_argument("--node", required=True, help="the relay's or a provider's node address")
    audit.set_defaults(handler=handler("lookup_audit"))
