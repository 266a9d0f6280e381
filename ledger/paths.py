"""Where the project's non-Python assets live.

The ledger layer needs the Solidity sources, the committed artifacts and the npm
toolchain (solc-js shim, anvil). They sit beside the Python packages in the source
tree, so every location is derived from this file's position instead of the working
directory: a CLI run from any directory finds the same artifacts.
"""

from __future__ import annotations

from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
CONTRACTS_DIR = PROJECT_ROOT / "contracts"
BUILD_DIR = CONTRACTS_DIR / "build"
NODE_MODULES = PROJECT_ROOT / "node_modules"
SOLC_SHIM = PROJECT_ROOT / "scripts" / "solc-shim.js"
ANVIL_BINARY = NODE_MODULES / "@foundry-rs" / "anvil-linux-amd64" / "bin" / "anvil"
