#!/usr/bin/env bash
# Regenerates the Python client's generated code from proto/ into
# clients/python/src/conclave_client/v1/: messages (*_pb2.py) and their type stubs (*_pb2.pyi)
# from grpcio-tools' protoc, service stubs (*_pb2_grpc.py) from grpcio-tools' gRPC plugin, and
# typed service stubs (*_pb2_grpc.pyi) from mypy-protobuf. The generated imports
# (`from conclave.v1 import runs_pb2`) are rewritten to the package (`from conclave_client.v1
# import runs_pb2`). The output is deterministic: no timestamps, no absolute paths.
#
#   clients/python/generate.sh
#
# Needs grpcio-tools and mypy-protobuf at the versions pinned in requirements-dev.txt (the
# generated code records them). It uses clients/python/.venv when present (clients/python/ci.sh
# creates it), otherwise $PYTHON or python3; install the tools with
#   python3 -m pip install -r clients/python/requirements-dev.txt
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
dest="$here/src/conclave_client/v1"

if [[ -n "${PYTHON:-}" ]]; then
  py=$PYTHON
elif [[ -x "$here/.venv/bin/python" ]]; then
  py="$here/.venv/bin/python"
else
  py=python3
fi

pin() { sed -n "s/^$1==\([^ ]*\).*/\1/p" "$here/requirements-dev.txt"; }
installed() { "$py" -c "import importlib.metadata as m, sys; print(m.version(sys.argv[1]))" "$1" 2>/dev/null || echo "none"; }
for tool in grpcio-tools mypy-protobuf; do
  want=$(pin "$tool")
  have=$(installed "$tool")
  if [[ "$have" != "$want" ]]; then
    echo "clients/python/generate.sh: $tool $want is needed (found: $have, python: $py);" \
      "run clients/python/ci.sh, or: $py -m pip install -r clients/python/requirements-dev.txt" >&2
    exit 1
  fi
done

# protoc-gen-mypy_grpc sits beside the interpreter (a venv), in Python's scripts directory, or
# on PATH (a --user install).
plugin=""
for candidate in "$(dirname "$py")/protoc-gen-mypy_grpc" \
  "$("$py" -c 'import sysconfig; print(sysconfig.get_path("scripts"))')/protoc-gen-mypy_grpc" \
  "$("$py" -c 'import site; print(site.getuserbase())')/bin/protoc-gen-mypy_grpc" \
  "$(command -v protoc-gen-mypy_grpc || true)"; do
  if [[ -n "$candidate" && -x "$candidate" ]]; then
    plugin=$candidate
    break
  fi
done
[[ -n "$plugin" ]] || { echo "clients/python/generate.sh: protoc-gen-mypy_grpc (mypy-protobuf) not found" >&2; exit 1; }

tmp=$(mktemp -d "${TMPDIR:-/tmp}/conclave-pygen.XXXXXX")
trap 'rm -rf "$tmp"' EXIT

cd "$repo/proto"
mapfile -t protos < <(find conclave -name '*.proto' | LC_ALL=C sort)
"$py" -m grpc_tools.protoc -I . \
  --python_out="$tmp" --pyi_out="$tmp" --grpc_python_out="$tmp" \
  --plugin=protoc-gen-mypy_grpc="$plugin" --mypy_grpc_out=quiet:"$tmp" \
  "${protos[@]}"

out="$tmp/conclave/v1"
# conclave.v1 is conclave_client.v1 inside the package: the imports between generated modules,
# and the module names the messages are registered under (their __module__).
for file in "$out"/*.py "$out"/*.pyi; do
  sed -i \
    -e 's/^from conclave\.v1 import /from conclave_client.v1 import /' \
    -e "s/'conclave\.v1\.\([a-z0-9_]*_pb2\)'/'conclave_client.v1.\1'/g" \
    "$file"
done
if grep -n '^\(from\|import\) conclave\.' "$out"/*.py "$out"/*.pyi; then
  echo "clients/python/generate.sh: an import of conclave.* was left unrewritten" >&2
  exit 1
fi

cat >"$out/__init__.py" <<'EOF'
"""Generated from proto/conclave/v1 by clients/python/generate.sh. Do not edit.

Messages are in ``<file>_pb2`` (e.g. ``runs_pb2.CreateRunRequest``), service stubs in
``<file>_pb2_grpc`` (e.g. ``runs_pb2_grpc.RunServiceStub``).
"""
EOF

rm -rf "$dest"
mkdir -p "$(dirname "$dest")"
mv "$out" "$dest"
echo "generated $(find "$dest" -type f | wc -l) files in ${dest#"$repo"/}"
