"""Compile the Solidity sources into committed artifacts.

solc-js is driven through `scripts/solc-shim.js` by py-solc-x, because no native
solc can be downloaded on these machines. The artifacts in `contracts/build/` are
committed so that start-up never needs the compiler; a test recompiles and compares,
so a source change without a rebuild cannot land.

Every artifact records the digest of the exact source files that produced it, so a
deployment manifest can prove which sources its bytecode came from.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import solcx
from solcx.wrapper import get_solc_version

from ledger.canonical import digest_json
from ledger.paths import BUILD_DIR, CONTRACTS_DIR, PROJECT_ROOT, SOLC_SHIM

EVM_VERSION = "prague"
OPTIMIZER_RUNS = 200


class CompilationError(RuntimeError):
    """The Solidity compiler rejected the sources; the message is solc's own."""


def source_files(contracts_dir: Path = CONTRACTS_DIR) -> list[Path]:
    """Every top-level `.sol` file: one contract per file, by design."""
    return sorted(contracts_dir.glob("*.sol"))


def standard_input(sources: list[Path]) -> dict[str, Any]:
    """The solc standard-JSON input; source keys are project-relative paths."""
    return {
        "language": "Solidity",
        "sources": {
            p.relative_to(PROJECT_ROOT).as_posix(): {"content": p.read_text()} for p in sources
        },
        "settings": {
            "evmVersion": EVM_VERSION,
            "optimizer": {"enabled": True, "runs": OPTIMIZER_RUNS},
            "viaIR": False,
            "outputSelection": {
                "*": {
                    "*": [
                        "abi",
                        "evm.bytecode.object",
                        "evm.deployedBytecode.object",
                        "evm.deployedBytecode.immutableReferences",
                    ]
                }
            },
        },
    }


def compile_sources(sources: list[Path] | None = None) -> dict[str, dict[str, Any]]:
    """Compile and return one artifact per contract declared in a project source file.

    Contracts pulled in from OpenZeppelin are compiled but not exported: only what
    the project itself declares is deployable.
    """
    sources = source_files() if sources is None else sources
    if not sources:
        raise CompilationError(f"no .sol files under {CONTRACTS_DIR}")
    std_in = standard_input(sources)
    try:
        output = solcx.compile_standard(std_in, solc_binary=SOLC_SHIM, allow_empty=True)
    except solcx.exceptions.SolcError as exc:
        raise CompilationError(str(exc)) from exc
    compiler = get_solc_version(SOLC_SHIM, with_commit_hash=True)
    source_digests = _source_digests(output, std_in["sources"])
    artifacts: dict[str, dict[str, Any]] = {}
    for path in std_in["sources"]:
        for name, out in output.get("contracts", {}).get(path, {}).items():
            bytecode = out["evm"]["bytecode"]["object"]
            if not bytecode:
                continue  # interfaces and abstract contracts are not deployable
            artifacts[name] = {
                "contractName": name,
                "sourcePath": path,
                "compiler": f"solc-js {compiler}",
                "settings": {"evmVersion": EVM_VERSION, "optimizerRuns": OPTIMIZER_RUNS},
                "sourceDigest": digest_json("solidity-sources", source_digests).hex(),
                "abi": out["abi"],
                "bytecode": "0x" + bytecode,
                "deployedBytecode": "0x" + out["evm"]["deployedBytecode"]["object"],
                # Byte ranges of the runtime code that the constructor fills in (AST id ->
                # [{start, length}]): the auditor masks them to compare deployed code.
                "immutableReferences": out["evm"]["deployedBytecode"].get(
                    "immutableReferences", {}
                ),
            }
    return artifacts


def _source_digests(output: Mapping[str, Any], own: Mapping[str, Any]) -> dict[str, str]:
    """SHA-256 of every source solc read (own and imported), keyed by its path."""
    import hashlib

    from ledger.paths import NODE_MODULES

    digests: dict[str, str] = {}
    for path in sorted(output.get("sources", {})):
        if path in own:
            text = own[path]["content"]
        else:
            local = PROJECT_ROOT / path
            text = (local if local.exists() else NODE_MODULES / path).read_text()
        digests[path] = hashlib.sha256(text.encode()).hexdigest()
    return digests


def artifact_text(artifact: Mapping[str, Any]) -> str:
    """The exact bytes written to disk, so committed and fresh artifacts compare as text."""
    return json.dumps(artifact, indent=2, sort_keys=True) + "\n"


def write_artifacts(
    artifacts: Mapping[str, Mapping[str, Any]], build_dir: Path = BUILD_DIR
) -> list[Path]:
    """Replace the build directory's artifacts; stale ones for deleted contracts go too."""
    build_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for stale in build_dir.glob("*.json"):
        if stale.stem not in artifacts:
            stale.unlink()
    for name, artifact in sorted(artifacts.items()):
        target = build_dir / f"{name}.json"
        tmp = target.with_suffix(".json.tmp")
        tmp.write_text(artifact_text(artifact))
        tmp.replace(target)
        written.append(target)
    return written


def main() -> None:
    """`python -m ledger.compiler`: rebuild contracts/build/ (also `provnet contracts build`)."""
    for path in write_artifacts(compile_sources()):
        print(path.relative_to(PROJECT_ROOT))


if __name__ == "__main__":
    main()
