"""Operator verbs on the CLI: the same as the REST API, spoken to the node's own API.

The CLI holds no chain key: it reads the node's config for the API address and token
and lets the node do the work, so a verb run from the CLI and the same verb over REST
take one code path and leave one audit trail.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import ssl
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx

from ledger.errors import ChainError
from ledger.ids import InvalidInput, dataset_id_for, hex32, name_id
from ledger.jsonfile import read_json
from node.config import NodeConfig

TERMINAL = ("COMPLETED", "DISPUTED", "FAILED", "EXPIRED")
_HEX32 = re.compile(r"^0x[0-9a-fA-F]{64}$")


class ApiError(InvalidInput):
    """The node refused a request; carries the field it named and the error's stable
    `code` (INVALID_INPUT, CONFLICT, CONTRACT_REVERT, NOT_FOUND, ...). The CLI prints it
    as `provnet: error: <field>: <message>`."""

    def __init__(self, field: str, problem: str, code: str = "") -> None:
        super().__init__(field, problem)
        self.code = code


class ApiChainError(ChainError):
    """The node could not get the request onto the chain (HTTP 502: CHAIN_UNAVAILABLE,
    NO_GAS, TRANSACTION_FAILED). Printed as a chain error in the node's own words, so an
    unfunded node reads the same `account 0x... has no gas ... provnet chain fund ...`
    line over the API as the CLI prints for its own transactions."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


def _client(config_path: Path) -> httpx.Client:
    """A client for the node's operator API: HTTPS trusting exactly the configured
    certificate when the node serves TLS (``api_tls_cert``), plain HTTP otherwise."""
    config = NodeConfig.load(config_path)
    verify: ssl.SSLContext | bool = True
    scheme = "http"
    if config.api_tls_cert is not None:
        scheme = "https"
        verify = ssl.create_default_context(cafile=str(config.api_tls_cert))
    return httpx.Client(
        base_url=f"{scheme}://{config.api_listen}",
        headers={"Authorization": f"Bearer {config.api_token()}"},
        timeout=httpx.Timeout(600.0, connect=5.0),
        verify=verify,
    )


def _answer(response: httpx.Response) -> Any:
    """The answer's JSON, or the node's error (`{"error": {"code", "field", "message"}}`)
    raised as one line: the field, then the message (a contract refusal's message names
    the contract's custom error). An answer not in that shape (a proxy, say) is shown
    by its status and the start of its text."""
    if response.status_code < 400:
        return response.json()
    try:
        body = response.json()
    except ValueError:
        body = None
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        text = response.text.strip()[:200] or response.reason_phrase
        raise ApiError(f"HTTP {response.status_code}", text)
    code = str(error.get("code") or "")
    message = str(error.get("message") or response.reason_phrase)
    if response.status_code == 502:
        raise ApiChainError(code, message)
    contract_error = error.get("contractError")
    if contract_error and str(contract_error) not in message:
        message = f"{contract_error}: {message}"
    raise ApiError(str(error.get("field") or f"HTTP {response.status_code}"), message, code)


def _request(config: Path, method: str, path: str, **kwargs: Any) -> Any:
    try:
        with _client(config) as client:
            return _answer(client.request(method, path, **kwargs))
    except httpx.TransportError as exc:
        raise ApiError("api", f"node API unreachable ({exc})") from None


def _print(obj: object) -> None:
    print(json.dumps(obj, indent=2))


def node_run(args: argparse.Namespace) -> int:
    # Certificate discovery does a TLS handshake without a client certificate, which
    # gRPC core logs at INFO on the serving side; an operator can still raise it.
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")
    from node.process import run_node

    return run_node(NodeConfig.load(args.config))


def node_peers(args: argparse.Namespace) -> int:
    """Which peers the node has verified; with ``--wait S``, until all are or S pass.

    Exit 0 when every active peer is verified (calls both ways pass TLS), 1 otherwise,
    so a start-up script can wait on it before running jobs.
    """
    deadline = time.monotonic() + max(0.0, args.wait)
    while True:
        answer = _request(args.config, "GET", "/peers")
        waiting = [p for p in answer["peers"] if p["certificate"] in ("pending", "unavailable")]
        if not waiting or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    _print(answer)
    print(answer["next"], file=sys.stderr)
    return 0 if not waiting else 1


def dataset_register(args: argparse.Namespace) -> int:
    path: Path = args.file
    if not path.is_file():
        raise InvalidInput("file", f"{path} does not exist")
    size = path.stat().st_size
    print(f"uploading {path.name} ({size} bytes); the node imports and commits it", file=sys.stderr)
    with path.open("rb") as fh:
        _print(
            _request(
                args.config,
                "POST",
                "/datasets",
                data={
                    "name": args.name,
                    "classification": str(args.classification),
                    "identifierColumns": args.identifier_columns,
                },
                files={"file": (path.name, fh)},
            )
        )
    return 0


def dataset_list(args: argparse.Namespace) -> int:
    _print(_request(args.config, "GET", "/datasets"))
    return 0


def _path_ref(reference: str) -> str:
    """A name or id as one URL path segment (names may hold spaces or slashes)."""
    return quote(reference, safe="")


def _own_dataset_id(config_path: Path, name: str) -> str | None:
    """This node's dataset id for `name`, derived from its organisation on chain.

    Only for nodes whose API predates GET /datasets/{dataset}: the node's address is
    read from its keystore without the password, its organisation from the chain.
    """
    from ledger.chain import Chain
    from ledger.clients import Clients
    from ledger.deployment import Deployment
    from ledger.keys import keystore_address

    config = NodeConfig.load(config_path)
    clients = Clients.bind(Chain.connect(config.chain_url), Deployment.load(config.manifest))
    org = clients.consortium.node_info(keystore_address(config.keystore)).org_id
    if org == bytes(32):
        return None
    return hex32(dataset_id_for(org, name_id("dataset", name)))


def _find_dataset(config_path: Path, reference: str) -> Any:
    """GET /datasets/{dataset}; on a node without that route, filter GET /datasets."""
    try:
        with _client(config_path) as client:
            response = client.get(f"/datasets/{_path_ref(reference)}")
    except httpx.TransportError as exc:
        raise ApiError("api", f"node API unreachable ({exc})") from None
    route_missing = response.status_code in (404, 405) and "detail" in _json_or_empty(response)
    if not route_missing:
        return _answer(response)
    wanted = {reference.lower()}
    if not _HEX32.match(reference):
        own = _own_dataset_id(config_path, reference)
        wanted |= {own} if own else set()
    for entry in _request(config_path, "GET", "/datasets"):
        if str(entry.get("datasetId", "")).lower() in wanted or entry.get("name") == reference:
            return entry
    raise ApiError("dataset", f"this node holds no dataset named or with id {reference!r}")


def _json_or_empty(response: httpx.Response) -> dict[str, Any]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def dataset_show(args: argparse.Namespace) -> int:
    """One dataset's columns and the types the node inferred, then what to do with it."""
    entry = _find_dataset(args.config, args.dataset)
    _print(entry)
    columns = entry.get("columns") or []
    described = ", ".join(
        f"{c.get('name')}: {c.get('type')}"
        + (f"(scale {c['scale']})" if c.get("scale") is not None else "")
        + (" [identifier]" if c.get("identifier") else "")
        for c in columns
    )
    print(
        f"{entry.get('rowCount')} rows; columns {described or 'unknown'}; grant it with: "
        f"provnet grant create --config {args.config} --dataset {args.dataset} --grantee ORG ...",
        file=sys.stderr,
    )
    return 0


def grant_create(args: argparse.Namespace) -> int:
    body = {
        "datasetId": args.dataset,
        "granteeOrg": args.grantee,
        "purpose": args.purpose,
        "validForSeconds": args.valid_for,
        "maxUses": args.max_uses,
    }
    if args.algorithm:
        body["algorithmDigest"] = args.algorithm
    _print(_request(args.config, "POST", "/grants", json=body))
    return 0


def grant_list(args: argparse.Namespace) -> int:
    _print(_request(args.config, "GET", "/grants"))
    return 0


def grant_revoke(args: argparse.Namespace) -> int:
    _print(_request(args.config, "DELETE", f"/grants/{_path_ref(args.grant)}"))
    return 0


def task_create(args: argparse.Namespace) -> int:
    body = {
        "requestId": args.request_id,
        "algorithm": args.algorithm,
        "params": read_json(args.params, "params"),
        "providers": read_json(args.providers, "providers"),
        "validForSeconds": args.valid_for,
    }
    if args.dataset:
        name, sep, version = args.dataset.rpartition(":")
        if sep and version.isdigit():
            body["dataset"] = {"dataset": name, "datasetVersion": int(version)}
        else:
            body["dataset"] = {"dataset": args.dataset}
    _print(_request(args.config, "POST", "/tasks", json=body))
    return 0


def task_watch(args: argparse.Namespace) -> int:
    """Print each change of the task's state until it ends (or the timeout passes)."""
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        status = _request(args.config, "GET", f"/tasks/{_path_ref(args.task)}")
        view = (status["state"], status["accepted"], status["results"], status["localPhase"])
        if view != last:
            print(
                f"{status['state']}: {status['accepted']}/{status['participants']} accepted, "
                f"{status['results']} result(s), this node: {status['localPhase']}",
                file=sys.stderr,
                flush=True,
            )
            last = view
        if status["state"] in TERMINAL:
            _print_failure(status)
            _print(status)
            return 0 if status["state"] == "COMPLETED" else 1
        if time.monotonic() > deadline:
            raise ApiError("timeout", f"task still {status['state']} after {args.timeout} s")
        time.sleep(args.interval)


def _print_failure(status: dict[str, Any]) -> None:
    """Why a task failed, in one line per fact: the reported reason, then each refusal."""
    failure = status.get("failure")
    if failure:
        print(
            f"failed: {failure.get('reason')} (code {failure.get('code')}) reported by "
            f"{failure.get('reportedBy')} of {failure.get('org')}",
            file=sys.stderr,
        )
    for refusal in status.get("refusals") or []:
        print(
            f"refused by {refusal.get('node')} of {refusal.get('org')}: "
            f"{refusal.get('reason')} (code {refusal.get('code')})",
            file=sys.stderr,
        )
    for refusal in status.get("attestationRefusals") or []:
        print(
            f"enclave refused by {refusal.get('node')} of {refusal.get('org')}: "
            f"{refusal.get('reason')} (report {refusal.get('reportDigest')}); see "
            "GET /tee on the host and docs/tee.md",
            file=sys.stderr,
        )


def task_result(args: argparse.Namespace) -> int:
    _print(_request(args.config, "GET", f"/tasks/{_path_ref(args.task)}/result"))
    return 0
