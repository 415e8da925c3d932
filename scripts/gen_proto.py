"""Generate the Python code of proto/opensqt/market_maker/v1 into connectors/remote/generated.

Usage: python scripts/gen_proto.py [--out DIR]   (or `make proto`)

Runs grpcio-tools' protoc (messages, type stubs, gRPC stubs), then makes the generated imports
relative (`from opensqt.market_maker.v1 import models_pb2` -> `from . import models_pb2`) so the
code lives inside our own package instead of a top-level `opensqt` package. Nothing in the
output directory is edited by hand: tests/remote/test_proto.py regenerates into a temporary
directory and fails when the committed files differ.
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PROTO_ROOT = ROOT / "proto"
PACKAGE_DIR = Path("opensqt/market_maker/v1")
DEFAULT_OUT = ROOT / "connectors" / "remote" / "generated"
TARGET_MODULE = "connectors.remote.generated"

HEADER = '''"""Generated from proto/opensqt/market_maker/v1 by scripts/gen_proto.py. Do not edit.

Regenerate with `make proto`; tests/remote/test_proto.py fails when these files are stale.
"""
'''


def protoc(args: list[str]) -> None:
    from grpc_tools import protoc as grpc_protoc  # dev dependency: only needed to generate

    include = Path(grpc_protoc.__file__).parent / "_proto"
    code = grpc_protoc.main(["grpc_tools.protoc", f"-I{PROTO_ROOT}", f"-I{include}", *args])
    if code != 0:
        raise SystemExit(f"protoc failed with exit code {code}")


def relative_imports(text: str) -> str:
    dotted = re.escape(str(PACKAGE_DIR).replace("/", "."))
    text = re.sub(rf"^from {dotted} import (\w+_pb2)", r"from . import \1", text, flags=re.M)
    return re.sub(rf"'{dotted}\.(\w+_pb2)'", rf"'{TARGET_MODULE}.\1'", text)


def generate(out: Path) -> list[Path]:
    sources = sorted(
        str(p.relative_to(PROTO_ROOT)) for p in (PROTO_ROOT / PACKAGE_DIR).glob("*.proto")
    )
    if not sources:
        raise SystemExit(f"no .proto files under {PROTO_ROOT / PACKAGE_DIR}")
    with tempfile.TemporaryDirectory() as tmp:
        protoc([f"--python_out={tmp}", f"--pyi_out={tmp}", f"--grpc_python_out={tmp}", *sources])
        produced = sorted((Path(tmp) / PACKAGE_DIR).iterdir())
        if out.exists():
            shutil.rmtree(out)
        out.mkdir(parents=True)
        written = [out / "__init__.py"]
        written[0].write_text(HEADER)
        for path in produced:
            target = out / path.name
            target.write_text(relative_imports(path.read_text()))
            written.append(target)
    return written


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT, help="output package directory")
    args = parser.parse_args(argv)
    written = generate(args.out)
    print(f"generated {len(written)} files into {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
