"""A node's configuration file: where its keys, data, chain and listeners are.

`provnet node init` writes it once; `provnet node run --config FILE` reads it. The file
holds paths and addresses only, never secrets: the keystore password comes from the
environment variable it names, and the API token is stored in its own file readable
by the operator alone.

Fields added after version 1 was first written are optional (a file without them loads
with the defaults below) and `provnet node init` writes them all:

* ``accept_tasks_from`` (list of organisation ids, ``0x`` + 64 hex digits; default
  ``[]``): organisations besides this node's own whose tasks may name this node in a
  slot *without* a dataset (an aggregator/consumer seat). Such a seat costs the node gas
  and inbox memory and serves the creator only, so a task from any other organisation
  is refused on chain with ``NOT_INVITED`` before anything is opened. Provider slots
  (with a dataset) are unaffected: they need a valid grant, as always.
* ``inbox_max_task_bytes`` (default 256 MiB) and ``inbox_max_total_bytes`` (default
  512 MiB): unread peer messages one task, and all tasks together, may hold in memory.
  A message beyond either is refused with gRPC RESOURCE_EXHAUSTED naming the limit; a
  task whose inbox cannot be opened because the total is reached is refused on chain
  with ``NODE_AT_CAPACITY``.
* ``peer_max_message_bytes`` (default 16 MiB): the largest protocol message a peer may
  send (and this node sends); larger ones are refused before they are read in full.
* ``peer_rate_messages`` (per second, default 200), ``peer_rate_burst`` (messages,
  default 400) and ``peer_rate_bytes`` (per second, default 256 MiB): per-peer token
  buckets on incoming gRPC calls; a peer over either gets RESOURCE_EXHAUSTED naming the
  limit (its client backs off and retries until its send deadline).
* ``api_max_upload_bytes`` (default 512 MiB): the largest request body of a file
  upload (a dataset, a lookup list to publish, a file to screen); other API requests
  are limited to 1 MiB. A larger ``Content-Length`` is
  answered 413 before any byte is read, a longer streamed body as soon as it passes.
* ``api_tls_cert`` / ``api_tls_key`` (paths, default unset: plain HTTP on
  ``api_listen``): serve the operator API over HTTPS with this certificate and key.
  Set both, e.g. to ``tls/cert.pem`` and ``tls/key.pem`` to reuse the node's own TLS
  identity (its certificate names the peer endpoint's host; clients must trust that
  certificate, e.g. ``curl --cacert tls/cert.pem``), or to an operator-issued pair.
* ``compute_processes`` (default 0: one per CPU core): worker processes a task's curve
  work (PSI hashing and blinding) is spread over. The pool is started with the first
  task that needs it and kept for the node's lifetime; 1 computes in the runner itself.
* ``lookup`` (default unset: no anonymous lookups): the lists this node takes part in,
  by roster file, and the lookup roles' settings; see
  ``node/lookup/node/settings.py``. A node named among a roster's providers is a key
  holder of that list, its relay is the relay, any other node with the roster queries.
* ``tee`` (default unset: no attested jobs): whether this node hosts ``tee-join``
  enclaves (``"backend": "simulated"``), and which enclaves its data may be provisioned
  to (``allowed_backends``, ``simulated_platform_keys``, ``max_report_age``); see
  ``node/tee/settings.py``.
"""

from __future__ import annotations

import os
import re
import secrets
from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput
from ledger.jsonfile import read_json, write_json_atomic
from node.lookup.node.settings import LookupSettings
from node.tee.settings import TeeSettings

CONFIG_VERSION = 1

MIB = 1024 * 1024


@dataclass(frozen=True)
class NodeConfig:
    name: str
    chain_url: str
    manifest: Path
    keystore: Path
    password_env: str
    tls_key: Path
    tls_cert: Path
    database_url: str
    peer_listen: str  # host:port the gRPC server binds
    peer_endpoint: str  # host:port registered on chain (what peers dial)
    api_listen: str  # host:port of the operator REST API
    api_token_file: Path
    data_dir: Path
    poll_interval: float = 1.0
    confirmations: int = 0
    protocol_timeout: float = 30.0  # how long a protocol step waits for a peer
    # Optional since their introduction; see the module docstring.
    accept_tasks_from: tuple[str, ...] = ()  # org ids allowed to seat this node without data
    inbox_max_task_bytes: int = 256 * MIB
    inbox_max_total_bytes: int = 512 * MIB
    peer_max_message_bytes: int = 16 * MIB
    peer_rate_messages: float = 200.0
    peer_rate_burst: int = 400
    peer_rate_bytes: float = 256.0 * MIB
    api_max_upload_bytes: int = 512 * MIB
    api_tls_cert: Path | None = None
    api_tls_key: Path | None = None
    compute_processes: int = 0  # 0: one worker per CPU core
    lookup: LookupSettings | None = None  # anonymous lookups: rosters and settings
    tee: TeeSettings | None = None  # attested jobs: hosting and trusted enclaves

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        values: dict[str, Any] = {}
        for k, v in raw.items():
            if isinstance(v, Path):
                v = str(v)
            elif isinstance(v, tuple):
                v = list(v)
            values[k] = v
        values["lookup"] = None if self.lookup is None else self.lookup.to_json()
        values["tee"] = None if self.tee is None else self.tee.to_json()
        return {"version": CONFIG_VERSION, **values}

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    def org_allow_list(self) -> frozenset[bytes]:
        """`accept_tasks_from` as raw 32-byte organisation ids."""
        return frozenset(bytes.fromhex(org[2:]) for org in self.accept_tasks_from)

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = read_json(path, "config")
        if not isinstance(raw, dict) or raw.get("version") != CONFIG_VERSION:
            raise InvalidInput("config.version", f"expected {CONFIG_VERSION}")
        base = path.parent
        defaults = {f.name for f in fields(cls) if f.default is not MISSING}
        values: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            field = f"config.{name}"
            if name not in raw or (raw[name] is None and kind.endswith(" | None")):
                if name in defaults:
                    continue
                raise InvalidInput(field, "missing")
            value = raw[name]
            if kind in ("Path", "Path | None"):
                if not isinstance(value, str) or not value:
                    raise InvalidInput(field, f"expected a path, got {value!r}")
                values[name] = (base / value) if not Path(value).is_absolute() else Path(value)
            elif kind == "float":
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    raise InvalidInput(field, f"expected a positive number, got {value!r}")
                values[name] = float(value)
            elif kind == "int":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise InvalidInput(field, f"expected an integer >= 0, got {value!r}")
                if name in POSITIVE_INTS and value == 0:
                    raise InvalidInput(field, f"expected an integer > 0, got {value!r}")
                values[name] = value
            elif kind == "tuple[str, ...]":
                values[name] = _org_ids(value, field)
            elif kind == "LookupSettings | None":
                values[name] = LookupSettings.from_json(value, base, field)
            elif kind == "TeeSettings | None":
                values[name] = TeeSettings.from_json(value, field)
            else:
                if not isinstance(value, str) or not value:
                    raise InvalidInput(field, f"expected text, got {value!r}")
                values[name] = value
        for name in ("peer_listen", "peer_endpoint", "api_listen"):
            parse_host_port(values[name], f"config.{name}")
        if ("api_tls_cert" in values) != ("api_tls_key" in values):
            missing = "api_tls_key" if "api_tls_cert" in values else "api_tls_cert"
            raise InvalidInput(f"config.{missing}", "api_tls_cert and api_tls_key go together")
        return cls(**values)

    def api_token(self) -> str:
        return self.api_token_file.read_text().strip()


POSITIVE_INTS = frozenset(
    {
        "inbox_max_task_bytes",
        "inbox_max_total_bytes",
        "peer_max_message_bytes",
        "peer_rate_burst",
        "api_max_upload_bytes",
    }
)
ORG_ID = re.compile(r"^0x[0-9a-fA-F]{64}$")


def _org_ids(value: object, field: str) -> tuple[str, ...]:
    if not isinstance(value, list):
        raise InvalidInput(field, f"expected a list of organisation ids, got {value!r}")
    for i, org in enumerate(value):
        if not isinstance(org, str) or not ORG_ID.match(org):
            raise InvalidInput(f"{field}[{i}]", f"expected 0x and 64 hex digits, got {org!r}")
    return tuple(org.lower() for org in value)


def parse_host_port(value: str, field: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInput(field, f"expected host:port, got {value!r}")
    return host, int(port)


def new_api_token(path: Path) -> None:
    """A random bearer token in a file only its owner can read."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(secrets.token_urlsafe(32) + "\n")
