"""Regenerate (or check) the committed gRPC/protobuf modules from `peer.proto`.

The generated modules are committed so that a node needs only the `grpcio` and
`protobuf` runtimes, not the code generator. Run from anywhere:

    python -m node.peer.generate          # rewrite peer_pb2*.py and their .pyi stubs
    python -m node.peer.generate --check  # exit 1 if the committed files are stale

The proto is compiled with the repository root as include path, so the generated
`peer_pb2_grpc.py` imports `node.peer.peer_pb2` by its package path.
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTO = Path("node/peer/peer.proto")
OUTPUTS = ("peer_pb2.py", "peer_pb2.pyi", "peer_pb2_grpc.py", "peer_pb2_grpc.pyi")


def _plugin(name: str) -> str:
    """The mypy-protobuf plugin installed beside this interpreter (the venv's bin)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def generate(out_dir: Path) -> None:
    """Compile the proto into `out_dir`, mirroring the repository layout."""
    from grpc_tools import protoc

    args = [
        "grpc_tools.protoc",
        f"-I{ROOT}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        f"--plugin=protoc-gen-mypy={_plugin('protoc-gen-mypy')}",
        f"--plugin=protoc-gen-mypy_grpc={_plugin('protoc-gen-mypy_grpc')}",
        f"--mypy_out={out_dir}",
        f"--mypy_grpc_out={out_dir}",
        str(ROOT / PROTO),
    ]
    if protoc.main(args) != 0:
        raise SystemExit("protoc failed")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--check", action="store_true", help="compare with the committed files, write nothing"
    )
    opts = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        generate(Path(tmp))
        fresh = Path(tmp) / PROTO.parent
        target = ROOT / PROTO.parent
        stale = [
            name
            for name in OUTPUTS
            if not (target / name).exists()
            or (target / name).read_bytes() != (fresh / name).read_bytes()
        ]
        if opts.check:
            for name in stale:
                print(f"stale: {PROTO.parent / name}", file=sys.stderr)
            return 1 if stale else 0
        for name in stale:
            shutil.copyfile(fresh / name, target / name)
            print(f"wrote {PROTO.parent / name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
