#!/usr/bin/env bash
# CI for the Python client: installs what it needs into clients/python/.venv (pinned in
# requirements-dev.txt), regenerates the code from proto/ (generate.sh), installs the package
# from a built wheel, type-checks it with mypy --strict, then runs the live tests (pytest)
# against a real `conclave serve` that they start on a free loopback port.
#
#   CONCLAVE_BIN=/abs/path/to/conclave clients/python/ci.sh [pytest arguments]
#
# Without CONCLAVE_BIN it uses target/debug/conclave, building it first if it is missing.
# Idempotent; works as root on a fresh Debian 12 machine (installs python3-venv if needed).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
repo=$(cd "$here/../.." && pwd)
cd "$here"

if [[ -z "${CONCLAVE_BIN:-}" ]]; then
  CONCLAVE_BIN="$repo/target/debug/conclave"
  if [[ ! -x "$CONCLAVE_BIN" ]]; then
    echo "== cargo build --bin conclave"
    (cd "$repo" && cargo build --quiet --bin conclave)
  fi
fi
[[ -x "$CONCLAVE_BIN" ]] || { echo "clients/python/ci.sh: CONCLAVE_BIN=$CONCLAVE_BIN is not an executable" >&2; exit 1; }
export CONCLAVE_BIN

echo "== python environment (clients/python/.venv)"
venv="$here/.venv"
if [[ ! -x "$venv/bin/python" ]] || ! "$venv/bin/python" -m pip --version >/dev/null 2>&1; then
  rm -rf "$venv"
  if ! python3 -m venv "$venv" 2>/dev/null; then
    # Debian's python3 needs python3-venv for venvs (with pip in them).
    rm -rf "$venv"
    sudo=""
    [[ $(id -u) -eq 0 ]] || sudo="sudo -n"
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    $sudo env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends python3-venv </dev/null
    python3 -m venv "$venv"
  fi
fi
py="$venv/bin/python"
"$py" --version
"$py" -m pip install --quiet --disable-pip-version-check --no-input -r requirements-dev.txt </dev/null

echo "== clients/python/generate.sh"
PYTHON="$py" ./generate.sh

echo "== install conclave-client (a wheel built from this directory)"
dist=$(mktemp -d "${TMPDIR:-/tmp}/conclave-pywheel.XXXXXX")
trap 'rm -rf "$dist" "$here/build"' EXIT
"$py" -m pip wheel --quiet --disable-pip-version-check --no-input --no-deps --no-build-isolation \
  --wheel-dir "$dist" . </dev/null
"$py" -m pip install --quiet --disable-pip-version-check --no-input --force-reinstall --no-deps \
  "$dist"/conclave_client-*.whl </dev/null
rm -rf "$here/src/conclave_client.egg-info"
# The wheel must carry the type information: py.typed and the generated stubs' .pyi files.
"$py" - <<'EOF'
import pathlib, conclave_client
root = pathlib.Path(conclave_client.__file__).parent
assert "site-packages" in str(root), f"conclave_client imported from {root}, not the installed wheel"
missing = [n for n in ("py.typed", "v1/runs_pb2.pyi", "v1/runs_pb2_grpc.pyi") if not (root / n).is_file()]
assert not missing, f"the installed package lacks {missing}"
print(f"installed: {root}")
EOF

echo "== mypy --strict: the helpers, then a user's code against the installed package's types"
"$py" -m mypy --no-incremental --cache-dir=/dev/null
(cd "$dist" && "$py" -m mypy --strict --no-incremental --cache-dir=/dev/null "$here/tests/typing_example.py")

echo "== pytest (live tests against $CONCLAVE_BIN)"
"$py" -m pytest -p no:cacheprovider "$@"
