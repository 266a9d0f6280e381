"""Operator verbs on the CLI: the same as the REST API, spoken to the node's own API.

The CLI holds no chain key: it reads the node's config for the API address and token
and lets the node do the work, so a verb run from the CLI and the same verb over REST
take one code path and leave one audit trail.
"""

from __future__ import annotations

import argparse
import json
import os
import ssl
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from ledger.ids import InvalidInput
from ledger.jsonfile import read_json
from node.config import NodeConfig

TERMINAL = ("COMPLETED", "DISPUTED", "FAILED", "EXPIRED")


class ApiError(InvalidInput):
    """The node refused a request; carries the field it named."""


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
    if response.status_code >= 400:
        try:
            error = response.json().get("error", {})
        except ValueError:
            error = {"message": response.text}
        field = error.get("field") or error.get("contractError") or f"HTTP {response.status_code}"
        raise ApiError(str(field), str(error.get("message", response.reason_phrase)))
    return response.json()


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
    _print(_request(args.config, "DELETE", f"/grants/{args.grant}"))
    return 0


def task_create(args: argparse.Namespace) -> int:
    body = {
        "requestId": args.request_id,
        "algorithm": args.algorithm,
        "params": read_json(args.params, "params"),
        "providers": read_json(args.providers, "providers"),
        "validForSeconds": args.valid_for,
    }
    _print(_request(args.config, "POST", "/tasks", json=body))
    return 0


def task_watch(args: argparse.Namespace) -> int:
    """Print each change of the task's state until it ends (or the timeout passes)."""
    deadline = time.monotonic() + args.timeout
    last = None
    while True:
        status = _request(args.config, "GET", f"/tasks/{args.task}")
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
            _print(status)
            return 0 if status["state"] == "COMPLETED" else 1
        if time.monotonic() > deadline:
            raise ApiError("timeout", f"task still {status['state']} after {args.timeout} s")
        time.sleep(args.interval)


def task_result(args: argparse.Namespace) -> int:
    _print(_request(args.config, "GET", f"/tasks/{args.task}/result"))
    return 0
