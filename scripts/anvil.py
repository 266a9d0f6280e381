"""Start and stop a private anvil JSON-RPC chain on 127.0.0.1 (dev tooling: demo, benchmarks).

The demo's nodes are built exactly as `provnet node run` builds them, and that code
reaches its chain by URL; a throw-away anvil gives it one without anything installed
beyond `make setup` (which puts the binary in node_modules).
"""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ledger.chain import Chain
from ledger.errors import ChainError
from ledger.paths import ANVIL_BINARY

ANVIL_CHAIN_ID = 31337
START_TIMEOUT = 30.0


def free_port() -> int:
    """A port nothing listens on right now (the kernel's choice for an ephemeral bind)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_anvil(chain_id: int = ANVIL_CHAIN_ID) -> Iterator[str]:
    """Yield the URL of a fresh anvil; it is terminated (and reaped) afterwards."""
    if not ANVIL_BINARY.exists():
        raise ChainError(f"anvil not found at {ANVIL_BINARY}: run `make setup` first")
    port = free_port()
    proc = subprocess.Popen(
        [
            str(ANVIL_BINARY),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--chain-id",
            str(chain_id),
            "--hardfork",
            "prague",  # the contracts' evmVersion, as on the embedded chain
            "--silent",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode() if proc.stderr else ""
                raise ChainError(f"anvil exited with {proc.returncode}: {err.strip()}")
            try:
                Chain.connect(url, timeout=1.0)
                break
            except ChainError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()


def advance_time(chain: Chain, seconds: int) -> None:
    """Move an anvil chain's clock forward and mine a block at the new time."""
    chain.w3.provider.make_request("evm_increaseTime", [seconds])  # type: ignore[arg-type]
    chain.w3.provider.make_request("evm_mine", [])  # type: ignore[arg-type]
