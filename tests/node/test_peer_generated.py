"""The committed protobuf/gRPC modules are exactly what `peer.proto` generates."""

from __future__ import annotations

import subprocess
import sys

from ledger.paths import PROJECT_ROOT


def test_generated_peer_modules_are_up_to_date() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "node.peer.generate", "--check"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
