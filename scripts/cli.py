"""The `provnet` command line.

Every command validates its input before touching a chain or a file, and any error
reaches the user as one line naming what is wrong (`--debug` shows the traceback).
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ledger.artifacts import ArtifactError
from ledger.errors import ChainError
from ledger.ids import InvalidInput

EXIT_USAGE = 2
EXIT_FAILURE = 1

Handler = Callable[[argparse.Namespace], int]


def _contracts_build(args: argparse.Namespace) -> int:
    from ledger.compiler import main as build

    build()
    return 0


def _chain_deploy(args: argparse.Namespace) -> int:
    from scripts.deploy_command import deploy_command

    return deploy_command(args)


def _task_show(args: argparse.Namespace) -> int:
    from scripts.audit_command import task_show

    return task_show(args)


def _audit_verify(args: argparse.Namespace) -> int:
    from scripts.audit_command import audit_verify

    return audit_verify(args)


def _node_init(args: argparse.Namespace) -> int:
    from scripts.node_command import node_init

    return node_init(args)


def _node_register(args: argparse.Namespace) -> int:
    from scripts.node_command import node_register

    return node_register(args)


def _operator(name: str) -> Handler:
    """A handler from scripts.operator_command, imported only when used."""

    def handler(args: argparse.Namespace) -> int:
        from scripts import operator_command

        result: int = getattr(operator_command, name)(args)
        return result

    return handler


def _lazy(module: str, name: str) -> Handler:
    """A handler `module.name`, imported only when its verb runs (keeps --help fast)."""

    def handler(args: argparse.Namespace) -> int:
        result: int = getattr(importlib.import_module(module), name)(args)
        return result

    return handler


def add_member_verbs(sub: Any) -> None:
    """`key`, `consortium`, `org`, `algorithm` and `measurement`: the steps a member takes
    besides its node."""
    from scripts.chain_source import add_admin_key, add_chain_source

    key = sub.add_parser("key", help="local account keys")
    key_sub = key.add_subparsers(dest="action", required=True)
    knew = key_sub.add_parser("new", help="create an encrypted keystore (e.g. an org admin's)")
    knew.add_argument("--out", required=True, type=Path, help="keystore file to create")
    knew.add_argument(
        "--password-env",
        default="PROVNET_KEY_PASSWORD",
        help="env var holding the password (default PROVNET_KEY_PASSWORD; else a prompt)",
    )
    knew.set_defaults(handler=_lazy("scripts.key_command", "key_new"))

    consortium = sub.add_parser("consortium", help="found a consortium")
    consortium_sub = consortium.add_subparsers(dest="action", required=True)
    cinit = consortium_sub.add_parser("init", help="write a commented genesis file")
    cinit.add_argument("--out", required=True, type=Path, help="genesis file to create")
    cinit.add_argument(
        "--member",
        action="append",
        default=[],
        metavar="NAME:ROLES:ADMIN",
        help="e.g. 'Bank A:provider,consumer:bank-a-admin.json' (ADMIN: address or keystore)",
    )
    cinit.add_argument("--threshold", type=int, default=67, help="thresholdPercent (default 67)")
    cinit.add_argument(
        "--dev", action="store_true", help="timelockSeconds 0, minApprovals 2: dev chains only"
    )
    cinit.set_defaults(handler=_lazy("scripts.consortium_command", "consortium_init"))

    org = sub.add_parser("org", help="the consortium's organisations")
    org_sub = org.add_subparsers(dest="action", required=True)
    olist = org_sub.add_parser("list", help="every organisation: id, roles, status, nodes")
    add_chain_source(olist)
    olist.set_defaults(handler=_lazy("scripts.org_command", "org_list"))
    oshow = org_sub.add_parser("show", help="one organisation by name or id")
    add_chain_source(oshow)
    oshow.add_argument("org", metavar="NAME|ID", help="organisation name or id")
    oshow.set_defaults(handler=_lazy("scripts.org_command", "org_show"))

    dev = sub.add_parser("dev", help="development helpers")
    dev_sub = dev.add_subparsers(dest="action", required=True)
    up = dev_sub.add_parser(
        "up", help="anvil plus N registered, funded nodes running, until Ctrl-C (dev only)"
    )
    up.add_argument("--orgs", type=int, default=3, help="number of organisations (>= 2)")
    up.add_argument("--dir", type=Path, default=Path("provnet-dev"), help="new directory")
    up.set_defaults(handler=_lazy("scripts.dev_command", "dev_up"))

    algorithm = sub.add_parser("algorithm", help="the consortium's approved algorithms")
    algorithm_sub = algorithm.add_subparsers(dest="action", required=True)
    for action, text in (
        ("list", "every algorithm proposed on chain, and whether this build runs it"),
        ("propose", "propose one of this build's algorithms by name (the admin votes too)"),
        ("vote", "approve a proposed algorithm by name or digest"),
    ):
        verb = algorithm_sub.add_parser(action, help=text)
        add_chain_source(verb)
        add_admin_key(verb)
        verb.add_argument("algorithm", nargs="?", metavar="NAME|DIGEST")
        verb.set_defaults(handler=_lazy("scripts.algorithm_command", f"algorithm_{action}"))

    tee_cmd = sub.add_parser("tee", help="a grantee's key for sealed enclave results")
    tee_sub = tee_cmd.add_subparsers(dest="action", required=True)
    rkey = tee_sub.add_parser(
        "result-key", help="make an X25519 key pair; tee-join seals its output to it"
    )
    rkey.add_argument("--out", required=True, type=Path, help="new file for the private key")
    rkey.set_defaults(handler=_lazy("scripts.tee_command", "tee_result_key"))
    opener = tee_sub.add_parser("open-result", help="open a sealed tee-join output")
    opener.add_argument("--key", required=True, type=Path, help="the result-key private key")
    opener.add_argument("result", type=Path, help="the host's `provnet task result` JSON")
    opener.set_defaults(handler=_lazy("scripts.tee_command", "tee_open_result"))

    measurement = sub.add_parser(
        "measurement", help="the enclave measurements the consortium trusts (attested jobs)"
    )
    measurement_sub = measurement.add_subparsers(dest="action", required=True)
    for action, text, metavar in (
        ("list", "every enclave measurement on chain, and this build's own", None),
        ("propose", "propose this build's enclave of an algorithm (the admin votes too)", "NAME"),
        ("revoke", "propose revoking a trusted measurement, for good", "MEASUREMENT"),
        ("vote", "vote for a measurement proposal (trust or revocation)", "PROPOSAL"),
    ):
        verb = measurement_sub.add_parser(action, help=text)
        add_chain_source(verb)
        add_admin_key(verb)
        if metavar is not None:
            verb.add_argument("target", nargs="?", metavar=metavar)
        if action == "propose":
            verb.add_argument(
                "--backend",
                help="the enclave backend to measure for: simulated (no hardware isolation)",
            )
        verb.set_defaults(handler=_lazy("scripts.measurement_command", f"measurement_{action}"))


def _demo(args: argparse.Namespace) -> int:
    from scripts.demo import run_demo

    return run_demo(as_json=args.json)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="provnet", description="Blockchain-audited data-sharing network"
    )
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", required=True)

    contracts = sub.add_parser("contracts", help="Solidity sources and artifacts")
    contracts_sub = contracts.add_subparsers(dest="action", required=True)
    build = contracts_sub.add_parser("build", help="compile contracts/*.sol into contracts/build/")
    build.set_defaults(handler=_contracts_build)

    chain = sub.add_parser("chain", help="deploy and inspect the contracts on a chain")
    chain_sub = chain.add_subparsers(dest="action", required=True)
    deploy = chain_sub.add_parser("deploy", help="deploy all contracts and write a manifest")
    deploy.add_argument("--chain", required=True, help="JSON-RPC URL of the node (http://...)")
    deploy.add_argument("--genesis", required=True, type=Path, help="genesis JSON file")
    deploy.add_argument("--keystore", type=Path, help="deployer keystore (password from env)")
    deploy.add_argument(
        "--dev-account",
        action="store_true",
        help="deploy from a fresh key funded by the node's unlocked account (dev chains only)",
    )
    deploy.add_argument("--out", required=True, type=Path, help="manifest file to write")
    deploy.set_defaults(handler=_chain_deploy)
    fund = chain_sub.add_parser(
        "fund", help="give accounts ether from the chain's unlocked account (dev chains only)"
    )
    fund.add_argument("--chain", required=True, help="JSON-RPC URL of the node (http://...)")
    fund.add_argument(
        "targets",
        nargs="+",
        metavar="TARGET",
        help="an address, a keystore file, or a node directory / node.json",
    )
    fund.add_argument("--eth", type=float, default=100.0, help="ether per target (default 100)")
    fund.set_defaults(handler=_lazy("scripts.deploy_command", "chain_fund"))

    task = sub.add_parser("task", help="inspect tasks on chain")
    task_sub = task.add_subparsers(dest="action", required=True)
    show = task_sub.add_parser("show", help="a task's on-chain state and participants")
    _chain_args(show)
    show.set_defaults(handler=_task_show)
    create = task_sub.add_parser("create", help="create a task through this node's API")
    _config_arg(create)
    create.add_argument("--request-id", required=True, help="idempotency key for retries")
    create.add_argument(
        "--algorithm",
        default="secure-stats",
        help="secure-stats (this node aggregates) or psi (this node matches --dataset)",
    )
    create.add_argument(
        "--dataset",
        metavar="NAME[:VERSION]",
        help="psi only: this organisation's own dataset to match (latest version by default)",
    )
    create.add_argument("--params", required=True, type=Path, help="JSON file of parameters")
    create.add_argument("--providers", required=True, type=Path, help="JSON file of providers")
    create.add_argument("--valid-for", type=int, default=3600, help="seconds until deadline")
    create.set_defaults(handler=_operator("task_create"))
    watch = task_sub.add_parser("watch", help="follow a task until it ends")
    _config_arg(watch)
    watch.add_argument("task", help="task id or the request id it was created with")
    watch.add_argument("--timeout", type=float, default=600.0)
    watch.add_argument("--interval", type=float, default=1.0)
    watch.set_defaults(handler=_operator("task_watch"))
    result = task_sub.add_parser("result", help="this node's result of a task it aggregated")
    _config_arg(result)
    result.add_argument("task", help="task id or the request id it was created with")
    result.set_defaults(handler=_operator("task_result"))

    dataset = sub.add_parser("dataset", help="datasets held by this node")
    dataset_sub = dataset.add_subparsers(dest="action", required=True)
    reg = dataset_sub.add_parser("register", help="import a CSV/Parquet file and register it")
    _config_arg(reg)
    reg.add_argument("--name", required=True)
    reg.add_argument("--file", required=True, type=Path)
    reg.add_argument("--classification", required=True, type=int, choices=(1, 2, 3, 4))
    reg.add_argument(
        "--identifier-columns",
        default="",
        metavar="NAME[,NAME...]",
        help="columns that identify people or accounts (e.g. account,phone); committed on chain",
    )
    reg.set_defaults(handler=_operator("dataset_register"))
    dlist = dataset_sub.add_parser("list", help="datasets this node holds")
    _config_arg(dlist)
    dlist.set_defaults(handler=_operator("dataset_list"))
    dshow = dataset_sub.add_parser("show", help="one dataset's columns and inferred types")
    _config_arg(dshow)
    dshow.add_argument("dataset", metavar="NAME|ID", help="dataset name or id")
    dshow.set_defaults(handler=_operator("dataset_show"))

    grant = sub.add_parser("grant", help="grants of this organisation's datasets")
    grant_sub = grant.add_subparsers(dest="action", required=True)
    gcreate = grant_sub.add_parser("create", help="allow another organisation to use a dataset")
    _config_arg(gcreate)
    gcreate.add_argument("--dataset", required=True, help="dataset name or id (this node's)")
    gcreate.add_argument("--grantee", required=True, help="grantee organisation name or id")
    gcreate.add_argument("--purpose", required=True)
    gcreate.add_argument("--valid-for", type=int, required=True, help="seconds")
    gcreate.add_argument("--max-uses", type=int, required=True)
    gcreate.add_argument("--algorithm", help="pin one algorithm digest (default: any approved)")
    gcreate.set_defaults(handler=_operator("grant_create"))
    glist = grant_sub.add_parser("list", help="grants made or received")
    _config_arg(glist)
    glist.set_defaults(handler=_operator("grant_list"))
    grevoke = grant_sub.add_parser("revoke", help="revoke a grant")
    _config_arg(grevoke)
    grevoke.add_argument("grant", help="grant id")
    grevoke.set_defaults(handler=_operator("grant_revoke"))

    audit = sub.add_parser("audit", help="the regulator's verification of a task")
    audit_sub = audit.add_subparsers(dest="action", required=True)
    verify = audit_sub.add_parser("verify", help="replay the chain and run every check")
    verify.add_argument("--chain", help="JSON-RPC URL of the node (default: the --config's)")
    verify.add_argument("--manifest", type=Path, help="deployment manifest (default: --config's)")
    verify.add_argument("task", help="task id (0x + 64 hex digits)")
    verify.add_argument(
        "--config",
        type=Path,
        help="the regulator's node.json: without --transcripts, its node fetches every "
        "participant's evidence itself (mutual TLS, signed requests)",
    )
    verify.add_argument("--timeout", type=float, default=30.0, help="fetch: s per participant")
    verify.add_argument("--settle", type=float, default=30.0, help="fetch: s to await checkpoints")
    verify.add_argument("--transcripts", type=Path, help="directory of <node>.json transcripts")
    verify.add_argument("--confirmations", type=int, default=0, help="blocks behind head")
    verify.add_argument(
        "--params",
        type=Path,
        help='the creator\'s `task result` JSON (or {"params", "salt"}): checks the '
        "parameters against the on-chain paramsDigest; the whole answer also discloses "
        "the result, which the FL round-chain and TEE attestation checks open",
    )
    verify.add_argument(
        "--sign-key",
        type=Path,
        help="the auditor's PEM private key (Ed25519 or ECDSA P-256/P-384; e.g. "
        "`openssl genpkey -algorithm ed25519 -out auditor.pem`): signs --report",
    )
    verify.add_argument(
        "--report", type=Path, help="write the in-toto Statement in a signed DSSE envelope here"
    )
    verify.add_argument("--prov", type=Path, help="write the task's W3C PROV-JSON here")
    verify.set_defaults(handler=_audit_verify)

    def _audit_check_report(args: argparse.Namespace) -> int:
        from scripts.audit_command import audit_check_report

        return audit_check_report(args)

    creport = audit_sub.add_parser(
        "check-report", help="verify a signed report (DSSE envelope) with the auditor's key"
    )
    creport.add_argument("report", type=Path, help="the report written by --report")
    creport.add_argument(
        "--public-key", required=True, type=Path, help="the auditor's PEM public key"
    )
    creport.set_defaults(handler=_audit_check_report)

    # `audit fetch` (scripts/audit_fetch_command.py, imported only when run)
    def _audit_fetch(args: argparse.Namespace) -> int:
        from scripts.audit_fetch_command import audit_fetch

        return audit_fetch(args)

    afetch = audit_sub.add_parser("fetch", help="a regulator's node fetches every transcript")
    afetch.add_argument("--config", required=True, type=Path, help="the regulator's node.json")
    afetch.add_argument("task", help="task id (0x + 64 hex digits)")
    afetch.add_argument("--out", required=True, type=Path, help="directory for <node>.json")
    afetch.add_argument("--timeout", type=float, default=30.0, help="seconds per participant")
    afetch.add_argument("--settle", type=float, default=30.0, help="seconds to await checkpoints")
    afetch.set_defaults(handler=_audit_fetch)

    node = sub.add_parser("node", help="set up and run a node")
    node_sub = node.add_subparsers(dest="action", required=True)
    init = node_sub.add_parser("init", help="create a node's keys, TLS identity and config")
    init.add_argument("--dir", required=True, type=Path, help="new directory for the node")
    init.add_argument("--name", required=True, help="human name of the node")
    init.add_argument("--chain", required=True, help="JSON-RPC URL of the chain")
    init.add_argument("--manifest", required=True, type=Path, help="deployment manifest")
    init.add_argument("--peer-listen", default="127.0.0.1:7000", help="gRPC bind host:port")
    init.add_argument("--peer-endpoint", help="host:port peers dial (default: --peer-listen)")
    init.add_argument("--api-listen", default="127.0.0.1:8000", help="REST API host:port")
    init.add_argument("--database", help="SQLAlchemy URL (default: SQLite in --dir)")
    init.add_argument(
        "--password-env", default="PROVNET_KEY_PASSWORD", help="env var of the password"
    )
    init.set_defaults(handler=_node_init)
    register = node_sub.add_parser("register", help="the org admin registers the node on chain")
    register.add_argument("--config", required=True, type=Path, help="the node's node.json")
    register.add_argument("--admin-keystore", required=True, type=Path, help="org admin key")
    register.add_argument("--admin-password-env", default="PROVNET_ADMIN_PASSWORD")
    register.set_defaults(handler=_node_register)
    tee_key = node_sub.add_parser(
        "tee-key",
        help="this host's simulated enclave platform key, for data owners' node.json",
    )
    _config_arg(tee_key)
    tee_key.set_defaults(handler=_lazy("scripts.node_command", "node_tee_key"))
    run = node_sub.add_parser("run", help="run the node: peer server, task runner, REST API")
    _config_arg(run)
    run.set_defaults(handler=_operator("node_run"))
    peers = node_sub.add_parser(
        "peers",
        help="which peers the running node has verified (exit 1 while any is not)",
        description="Every node on chain and whether this node has verified its TLS "
        "certificate: `verified`, `pending`, `unavailable` (with the problem and when it "
        "retries) or `inactive`. Two nodes can call each other once each shows the other "
        "verified; after starting nodes, `--wait 120` waits for that.",
    )
    _config_arg(peers)
    peers.add_argument(
        "--wait", type=float, default=0.0, help="seconds to wait for every peer to be verified"
    )
    peers.set_defaults(handler=_operator("node_peers"))

    # `auditor index` (auditor/index/command.py; its heavy imports wait for the run)
    from auditor.index.command import add_index_arguments

    auditor_cmd = sub.add_parser(
        "auditor", help="the regulator's auditor service: index, API and pages, sign-in"
    )
    auditor_sub = auditor_cmd.add_subparsers(dest="action", required=True)
    aindex = auditor_sub.add_parser("index", help="follow the chain into the index database")
    add_index_arguments(aindex)
    aindex.set_defaults(handler=_lazy("auditor.index.command", "auditor_index"))
    from auditor.auth.command import add_token_arguments

    atoken = auditor_sub.add_parser("token", help="sign in to an auditor; print a bearer token")
    add_token_arguments(atoken)
    atoken.set_defaults(handler=_lazy("auditor.auth.command", "auditor_token"))
    from scripts.auditor_command import add_auditor_verbs  # `auditor init|run`

    add_auditor_verbs(auditor_sub, _lazy)

    add_member_verbs(sub)

    from scripts.lookup_command import add_lookup_verbs

    add_lookup_verbs(sub, _config_arg, lambda name: _lazy("scripts.lookup_command", name))

    demo = sub.add_parser(
        "demo", help="a secure-statistics task between local nodes on a private anvil, audited"
    )
    demo.add_argument("--json", action="store_true", help="print one JSON object")
    demo.set_defaults(handler=_demo)
    return parser


def _config_arg(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", required=True, type=Path, help="the node's node.json")


def _chain_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--chain", required=True, help="JSON-RPC URL of the node (http://...)")
    parser.add_argument("--manifest", required=True, type=Path, help="deployment manifest")
    parser.add_argument("task", help="task id (0x + 64 hex digits)")


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler: Handler = args.handler
    try:
        return handler(args)
    except (InvalidInput, ValueError) as exc:
        if args.debug:
            raise
        print(f"provnet: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ChainError, ArtifactError) as exc:
        if args.debug:
            raise
        print(f"provnet: chain error: {exc}", file=sys.stderr)
        return EXIT_FAILURE
    except Exception as exc:  # anything unforeseen: one line, the traceback only on request
        if args.debug:
            raise
        print(
            f"provnet: unexpected {type(exc).__name__}: {exc} (rerun with --debug)", file=sys.stderr
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
