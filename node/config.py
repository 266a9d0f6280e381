"""A node's configuration file: where its keys, data, chain and listeners are.

`provnet node init` writes it once; `provnet node run --config FILE` reads it. The file
holds paths and addresses only, never secrets: the keystore password comes from the
environment variable it names, and the API token is stored in its own file readable
by the operator alone.
"""

from __future__ import annotations

import os
import secrets
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput
from ledger.jsonfile import read_json, write_json_atomic

CONFIG_VERSION = 1


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

    def to_json(self) -> dict[str, Any]:
        raw = asdict(self)
        return {
            "version": CONFIG_VERSION,
            **{k: str(v) if isinstance(v, Path) else v for k, v in raw.items()},
        }

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> NodeConfig:
        raw = read_json(path, "config")
        if not isinstance(raw, dict) or raw.get("version") != CONFIG_VERSION:
            raise InvalidInput("config.version", f"expected {CONFIG_VERSION}")
        base = path.parent
        values: dict[str, Any] = {}
        for name, kind in cls.__annotations__.items():
            if name not in raw:
                if name in ("poll_interval", "confirmations", "protocol_timeout"):
                    continue
                raise InvalidInput(f"config.{name}", "missing")
            value = raw[name]
            if kind == "Path":
                if not isinstance(value, str) or not value:
                    raise InvalidInput(f"config.{name}", f"expected a path, got {value!r}")
                values[name] = (base / value) if not Path(value).is_absolute() else Path(value)
            elif kind == "float":
                if not isinstance(value, int | float) or isinstance(value, bool) or value <= 0:
                    raise InvalidInput(
                        f"config.{name}", f"expected a positive number, got {value!r}"
                    )
                values[name] = float(value)
            elif kind == "int":
                if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                    raise InvalidInput(f"config.{name}", f"expected an integer >= 0, got {value!r}")
                values[name] = value
            else:
                if not isinstance(value, str) or not value:
                    raise InvalidInput(f"config.{name}", f"expected text, got {value!r}")
                values[name] = value
        for name in ("peer_listen", "peer_endpoint", "api_listen"):
            parse_host_port(values[name], f"config.{name}")
        return cls(**values)

    def api_token(self) -> str:
        return self.api_token_file.read_text().strip()


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
