"""`provnet node init`, `register` and `tee-key`: a node's identity, its place on chain, and
the enclave platform key data owners must list before they trust the enclaves it hosts."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from ledger.chain import Chain
from ledger.clients import Clients
from ledger.clients.consortium import NodeStatus
from ledger.deployment import Deployment
from ledger.ids import InvalidInput
from ledger.keys import new_account, password_from, read_keystore, write_keystore
from ledger.transactions import Sender
from node.config import NodeConfig, new_api_token, parse_host_port
from node.identity import certificate_digest, new_tls_identity
from node.tee.settings import simulated_platform_key
from node.tee.simulated import SIMULATED

CONFIG_NAME = "node.json"


def node_init(args: argparse.Namespace) -> int:
    """Create keys, TLS identity, API token and config in a new directory; never overwrite.

    The config is written with every field, the optional ones at their defaults (no
    `accept_tasks_from` organisations, the inbox, peer-rate and upload limits, plain HTTP
    for the operator API): see `node.config` for what each means.
    """
    directory: Path = args.dir
    if (directory / CONFIG_NAME).exists():
        raise InvalidInput("dir", f"{directory} already holds a node ({CONFIG_NAME} exists)")
    for field, value in (("peer-listen", args.peer_listen), ("api-listen", args.api_listen)):
        parse_host_port(value, field)
    endpoint = args.peer_endpoint or args.peer_listen
    host, _ = parse_host_port(endpoint, "peer-endpoint")
    password = password_from(args.password_env, confirm=True)
    Deployment.load(args.manifest)  # refuse to write anything for an unreadable manifest
    directory.mkdir(parents=True, exist_ok=True)
    account = new_account()
    write_keystore(account, directory / "keystore.json", password)
    tls = new_tls_identity(f"provnet node {args.name}", hosts=(host,))
    (directory / "tls").mkdir(exist_ok=True)
    (directory / "tls" / "cert.pem").write_bytes(tls.cert_pem)
    key_path = directory / "tls" / "key.pem"
    key_path.touch(mode=0o600)
    key_path.write_bytes(tls.key_pem)
    new_api_token(directory / "api-token")
    config = NodeConfig(
        name=args.name,
        chain_url=args.chain,
        manifest=args.manifest.resolve(),
        keystore=Path("keystore.json"),
        password_env=args.password_env,
        tls_key=Path("tls/key.pem"),
        tls_cert=Path("tls/cert.pem"),
        database_url=args.database or f"sqlite:///{(directory / 'node.db').resolve()}",
        peer_listen=args.peer_listen,
        peer_endpoint=endpoint,
        api_listen=args.api_listen,
        api_token_file=Path("api-token"),
        data_dir=Path("data"),
    )
    (directory / "data").mkdir(exist_ok=True)
    config.save(directory / CONFIG_NAME)
    print(f"node {account.address} initialised in {directory}")
    print(f"tls certificate sha256 0x{tls.cert_sha256.hex()}")
    return 0


def node_register(args: argparse.Namespace) -> int:
    """The org admin puts the node's account, endpoint and certificate digest on chain.

    Idempotent: registering an already registered node with the same endpoint and
    certificate does nothing; a changed endpoint or certificate is an update.
    """
    config = NodeConfig.load(args.config)
    node_account = read_keystore(config.keystore, password_from(config.password_env))
    cert_digest = certificate_digest(config.tls_cert.read_bytes())
    admin = read_keystore(args.admin_keystore, password_from(args.admin_password_env))
    chain = Chain.connect(config.chain_url)
    deployment = Deployment.load(config.manifest)
    clients = Clients.bind(chain, deployment, Sender(chain, admin))
    info = clients.consortium.node_info(node_account.address)
    if info.status == NodeStatus.NONE:
        clients.consortium.register_node(node_account.address, config.peer_endpoint, cert_digest)
        print(f"registered node {node_account.address} at {config.peer_endpoint}")
    elif (info.endpoint, info.tls_cert_sha256) != (config.peer_endpoint, cert_digest):
        clients.consortium.update_node(node_account.address, config.peer_endpoint, cert_digest)
        print(f"updated node {node_account.address} to {config.peer_endpoint}")
    else:
        print(f"node {node_account.address} already registered; nothing to do")
    return 0


def node_tee_key(args: argparse.Namespace) -> int:
    """Print this host's simulated platform public key, which data owners must list.

    An owner believes a simulated enclave's report only when the platform key that signed
    it is in its own `tee.simulated_platform_keys`; the key is derived from the node's
    account key (`node.tee.settings`), so it is read here from the keystore, never stored.
    A node without `tee.backend` hosts no enclave, so it has no platform key to show.
    """
    config = NodeConfig.load(args.config)
    if config.tee is None or config.tee.backend is None:
        raise InvalidInput(
            "tee.backend",
            f'{args.config} hosts no enclaves: add "tee": {{"backend": "{SIMULATED}"}} to it '
            "(on the node that creates tee-join tasks: it runs their enclave), then rerun",
        )
    if config.tee.backend != SIMULATED:
        raise InvalidInput(
            "tee.backend",
            f"{config.tee.backend!r} attests with the hardware's own key; only the "
            f"{SIMULATED} backend has a platform key derived from the node's account",
        )
    account = read_keystore(config.keystore, password_from(config.password_env))
    public = simulated_platform_key(bytes(account.key)).public_key()
    key = public.public_bytes(Encoding.Raw, PublicFormat.Raw).hex()
    snippet = json.dumps(
        {"tee": {"allowed_backends": [SIMULATED], "simulated_platform_keys": [key]}}
    )
    out = {
        "node": account.address,
        "backend": SIMULATED,
        "platformKey": key,
        "note": "simulated backend: no hardware isolation; this host can read every input "
        "and forge reports, so an owner that lists this key trusts the host's operator "
        "(docs/tee.md)",
        "next": "data owners that accept this host add its key to tee.simulated_platform_keys "
        f"in their node.json, e.g. {snippet}, then restart their node (provnet node run)",
    }
    print(json.dumps(out, indent=2))
    return 0
