"""Generate the committed protobuf and gRPC code for dispatch.v1, or check that it has not drifted.

    python scripts/gen_protos.py           # regenerate into src/dispatch/v1/
    python scripts/gen_protos.py --check   # generate into a temporary directory, fail if src/ differs

The output depends on the grpcio-tools version, which is pinned in the `dev` extra of pyproject.toml;
regenerate with that version so that the committed files are byte-for-byte reproducible.
"""

from __future__ import annotations

import argparse
import importlib.metadata
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "protos"
OUT_ROOT = ROOT / "src"
# Paths relative to PROTO_ROOT; the import path of each generated module follows from it (dispatch/v1 ->
# dispatch.v1), which is why protoc gets -Iprotos rather than the proto's own directory.
PROTOS = ("dispatch/v1/dispatch.proto",)
GENERATED_SUFFIXES = ("_pb2.py", "_pb2.pyi", "_pb2_grpc.py")


def generated_files() -> list[Path]:
    """Paths, relative to the output root, of every file that generation writes."""
    files: list[Path] = []
    for proto in PROTOS:
        stem = proto.removesuffix(".proto")
        files.extend(Path(stem + suffix) for suffix in GENERATED_SUFFIXES)
    return files


def generate(out_root: Path) -> None:
    """Run protoc on every proto in PROTOS, writing Python, stub and gRPC modules under out_root.

    protoc runs as `python -m grpc_tools.protoc`, which also puts the well-known types
    (google/protobuf/*.proto) shipped with grpcio-tools on the include path.
    """
    command = [
        sys.executable,
        "-m",
        "grpc_tools.protoc",
        f"-I{PROTO_ROOT}",
        f"--python_out={out_root}",
        f"--pyi_out={out_root}",
        f"--grpc_python_out={out_root}",
        *(str(PROTO_ROOT / proto) for proto in PROTOS),
    ]
    result = subprocess.run(command, check=False)
    if result.returncode != 0:
        raise SystemExit(f"gen_protos: protoc failed with exit status {result.returncode}")


def drifted(expected_root: Path, actual_root: Path) -> list[str]:
    """One line per generated file under actual_root that differs from (or lacks) its expected_root twin."""
    problems: list[str] = []
    for rel in generated_files():
        expected = expected_root / rel
        actual = actual_root / rel
        if not actual.is_file():
            problems.append(f"missing: {actual.relative_to(ROOT)}")
        elif actual.read_bytes() != expected.read_bytes():
            problems.append(f"differs: {actual.relative_to(ROOT)}")
    return problems


def grpcio_tools_version() -> str:
    """The installed grpcio-tools version, or 'unknown'."""
    try:
        return importlib.metadata.version("grpcio-tools")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


def check() -> int:
    """0 when the committed generated code matches the protos; otherwise 1, with a report on stderr."""
    with tempfile.TemporaryDirectory(prefix="gen_protos_") as tmp:
        tmp_root = Path(tmp)
        generate(tmp_root)
        problems = drifted(tmp_root, OUT_ROOT)
    if not problems:
        print(f"gen_protos: generated code is up to date ({len(generated_files())} files)")
        return 0
    print("gen_protos: committed generated code does not match the protos:", file=sys.stderr)
    for problem in problems:
        print(f"  {problem}", file=sys.stderr)
    print(
        "Run `python scripts/gen_protos.py` and commit the result "
        f"(grpcio-tools here: {grpcio_tools_version()}; use the version pinned in pyproject.toml).",
        file=sys.stderr,
    )
    return 1


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the exit status."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument(
        "--check",
        action="store_true",
        help="generate into a temporary directory and fail if the committed code differs",
    )
    args = parser.parse_args(argv)
    if args.check:
        return check()
    generate(OUT_ROOT)
    for rel in generated_files():
        print(f"gen_protos: wrote {(OUT_ROOT / rel).relative_to(ROOT)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
