"""Regenerate (or check) the committed gRPC/protobuf modules from the node's protos.

The generated modules are committed so that a node needs only the `grpcio` and
`protobuf` runtimes, not the code generator. Two protos are compiled, each into the
directory it lives in: `node/peer/peer.proto` (the peer data plane) and
`node/lookup/lookup.proto` (anonymous lookups, served on the same peer server). Run
from anywhere:

    python -m node.peer.generate          # rewrite *_pb2*.py and their .pyi stubs
    python -m node.peer.generate --check  # exit 1 if any committed file is stale

The protos are compiled with the repository root as include path, so a generated
`*_pb2_grpc.py` imports its `*_pb2` by its package path (`node.peer.peer_pb2`, ...).
"""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
PROTOS = (Path("node/peer/peer.proto"), Path("node/lookup/lookup.proto"))
PROTO = PROTOS[0]  # the peer plane's proto, as before
SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py", "_pb2_grpc.pyi")


def outputs(proto: Path) -> tuple[Path, ...]:
    """The committed files `proto` generates, relative to the repository root."""
    return tuple(proto.parent / f"{proto.stem}{suffix}" for suffix in SUFFIXES)


def _plugin(name: str) -> str:
    """The mypy-protobuf plugin installed beside this interpreter (the venv's bin)."""
    beside = Path(sys.executable).parent / name
    found = str(beside) if beside.exists() else shutil.which(name)
    if found is None:
        raise SystemExit(f"{name} not found: install the dev extras (mypy-protobuf)")
    return found


def generate(out_dir: Path, protos: tuple[Path, ...] = PROTOS) -> None:
    """Compile the protos into `out_dir`, mirroring the repository layout."""
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
        *(str(ROOT / proto) for proto in protos),
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
        stale = [
            name
            for proto in PROTOS
            for name in outputs(proto)
            if not (ROOT / name).exists()
            or (ROOT / name).read_bytes() != (Path(tmp) / name).read_bytes()
        ]
        if opts.check:
            for name in stale:
                print(f"stale: {name}", file=sys.stderr)
            return 1 if stale else 0
        for name in stale:
            shutil.copyfile(Path(tmp) / name, ROOT / name)
            print(f"wrote {name}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
