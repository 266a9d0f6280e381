"""Start and stop a private anvil JSON-RPC chain on 127.0.0.1 (dev tooling: demo, benchmarks).

The demo's nodes are built exactly as `provnet node run` builds them, and that code
reaches its chain by URL; a throw-away anvil gives it one without anything installed
beyond `make setup` (which puts the binary in node_modules).
"""

from __future__ import annotations

import random
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


#: Where `free_port` looks: below the kernel's ephemeral range (32768-60999 by default),
#: so no outgoing connection and no bind to port 0 can take a port between the moment
#: it is chosen and the moment its server binds it (a node's peer port is written to its
#: config and registered on chain first). Random, so two callers rarely pick the same.
FREE_PORT_RANGE = (20_000, 32_000)


def free_port() -> int:
    """A port nothing listens on right now, chosen where nothing else picks ports.

    The kernel's own choice for a bind to port 0 lies in the ephemeral range, which
    every outgoing TCP connection and every other bind-to-0 on the machine draw from:
    such a port can be taken again before its server starts (seen with many parallel
    test processes). Falls back to the kernel's choice if the range is exhausted.
    """
    chooser = random.SystemRandom()
    for _ in range(100):
        port = chooser.randrange(*FREE_PORT_RANGE)
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
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
