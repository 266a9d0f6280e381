"""``auditor.json``: what `provnet auditor run` needs, written by `provnet auditor init`.

Paths are stored absolute (init resolves them), so the service can be started from any
directory. The regulator's node config (``node_config``) supplies the key that signs
evidence requests and anchors the query log; the report key (Ed25519 PEM, private to
its owner) signs the DSSE reports; its public half sits beside it for report readers.
"""

from __future__ import annotations

from dataclasses import MISSING, asdict, dataclass, fields
from pathlib import Path
from typing import Any

from ledger.ids import InvalidInput
from ledger.jsonfile import read_json, write_json_atomic

CONFIG_VERSION = 1
CONFIG_NAME = "auditor.json"
DEFAULT_LISTEN = "127.0.0.1:8600"


@dataclass(frozen=True)
class AuditorConfig:
    chain_url: str
    manifest: Path
    database_url: str
    listen: str  # host:port the API and pages bind
    node_config: Path  # the regulator's node.json
    report_key: Path  # Ed25519 PEM (PKCS#8) private key: signs the reports
    report_public_key: Path
    confirmations: int = 0
    checkpoint_interval: float = 300.0  # seconds between query-log checkpoints
    poll_interval: float = 1.0  # seconds between index catch-ups
    fetch_timeout: float = 30.0  # seconds per participant for an evidence fetch
    fetch_settle: float = 10.0  # seconds to wait for transcripts to settle
    session_ttl: int = 900  # seconds a sign-in token lives
    # The regulator key's AnchorLog log of this database's query log: one name per
    # database, since one key may serve several auditors and each log only grows.
    query_log_name: str = "auditor-query-log"

    @property
    def host_port(self) -> tuple[str, int]:
        return split_listen(self.listen)

    @property
    def base_url(self) -> str:
        host, port = self.host_port
        return f"http://{host}:{port}"

    def to_json(self) -> dict[str, Any]:
        values = {k: str(v) if isinstance(v, Path) else v for k, v in asdict(self).items()}
        return {"version": CONFIG_VERSION, **values}

    def save(self, path: Path) -> None:
        write_json_atomic(path, self.to_json())

    @classmethod
    def load(cls, path: Path) -> AuditorConfig:
        raw = read_json(path, "config")
        if not isinstance(raw, dict) or raw.get("version") != CONFIG_VERSION:
            raise InvalidInput(
                "config.version", f"{path}: expected an auditor.json of version {CONFIG_VERSION}"
            )
        known = {f.name for f in fields(cls)} | {"version"}
        unknown = sorted(k for k in raw if k not in known and not k.startswith("_"))
        if unknown:
            # A misspelt key would otherwise silently fall back to its default.
            raise InvalidInput(
                f"config.{unknown[0]}",
                f"{path}: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}",
            )
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name not in raw:
                if f.default is not MISSING:  # has a default
                    continue
                raise InvalidInput(f"config.{f.name}", f"{path}: missing")
            value = raw[f.name]
            kind = str(f.type)
            try:
                if kind == "Path":
                    values[f.name] = (path.parent / str(value)).resolve()
                elif kind == "int":
                    values[f.name] = int(value)
                elif kind == "float":
                    values[f.name] = float(value)
                else:
                    values[f.name] = str(value)
            except (TypeError, ValueError):
                raise InvalidInput(f"config.{f.name}", f"{path}: not a {kind}") from None
        config = cls(**values)
        config.host_port  # noqa: B018 - refuses a malformed listen address now
        if config.confirmations < 0 or config.checkpoint_interval <= 0:
            raise InvalidInput("config", "confirmations must be >= 0, checkpoint_interval > 0")
        return config


def split_listen(listen: str) -> tuple[str, int]:
    host, sep, port = listen.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise InvalidInput("listen", f"expected host:port, got {listen!r}")
    return host, int(port)
