"""Start and stop a real anvil JSON-RPC node on 127.0.0.1 for tests."""

from __future__ import annotations

import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

from ledger.chain import Chain
from ledger.paths import ANVIL_BINARY

ANVIL_CHAIN_ID = 31337
START_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running_anvil(chain_id: int = ANVIL_CHAIN_ID) -> Iterator[str]:
    """Yield the URL of a fresh anvil; it is terminated (and reaped) afterwards."""
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
            "prague",
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
                raise RuntimeError(f"anvil exited with {proc.returncode}: {err}")
            try:
                Chain.connect(url, timeout=1.0)
                break
            except Exception:
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
