#!/usr/bin/env bash
# Regenerates the Go client's generated code (clients/go/conclavev1/*.pb.go) from proto/.
#
#   clients/go/generate.sh
#
# The protoc is the one inside PyPI's grpcio-tools, pinned below so that the version written in
# the generated headers never changes; it is installed with `pip install --target` into a cache
# directory of its own (no virtualenv, no change to the system's Python) when it is missing. The
# Go plugins are Debian's protoc-gen-go (1.28.1) and protoc-gen-go-grpc (1.0, from grpc-go
# 1.33.3); clients/go/ci.sh installs them.
#
# The Go package of the generated code comes from `M` options (the protos carry no go_package):
# every proto/conclave/v1/*.proto maps to conclave.dev/client/conclavev1, written under
# clients/go/conclavev1/. The output holds no timestamps and no absolute paths.
set -euo pipefail

GRPCIO_TOOLS_VERSION=1.66.2

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"
module=conclave.dev/client
package_dir=conclavev1

tools="${CONCLAVE_GRPCIO_TOOLS_DIR:-${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/conclave-clients/grpcio-tools-$GRPCIO_TOOLS_VERSION}"
if ! PYTHONPATH="$tools" python3 -c 'import grpc_tools.protoc' 2>/dev/null; then
  echo "generate.sh: installing grpcio-tools==$GRPCIO_TOOLS_VERSION into $tools" >&2
  python3 -m pip install --quiet --disable-pip-version-check --no-warn-script-location \
    --target "$tools" "grpcio-tools==$GRPCIO_TOOLS_VERSION" "grpcio==$GRPCIO_TOOLS_VERSION"
fi

for plugin in protoc-gen-go protoc-gen-go-grpc; do
  command -v "$plugin" >/dev/null || {
    echo "generate.sh: $plugin is missing (apt-get install $plugin, or run clients/go/ci.sh)" >&2
    exit 1
  }
done

cd "$root"
protos=()
mapping=()
for f in proto/conclave/v1/*.proto; do
  rel=${f#proto/}
  protos+=("$rel")
  mapping+=("M$rel=$module/$package_dir;$package_dir")
done
go_opts=$(IFS=,; echo "module=$module,${mapping[*]}")

out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT

PYTHONPATH="$tools" python3 -m grpc_tools.protoc \
  -I proto \
  --plugin=protoc-gen-go="$(command -v protoc-gen-go)" \
  --plugin=protoc-gen-go-grpc="$(command -v protoc-gen-go-grpc)" \
  --go_out="$out" --go_opt="$go_opts" \
  --go-grpc_out="$out" --go-grpc_opt="$go_opts" \
  "${protos[@]}"

# Replace the generated directory whole, so a proto that was removed leaves no stale file.
rm -rf "${here:?}/$package_dir"
mv "$out/$package_dir" "$here/$package_dir"
chmod 644 "$here/$package_dir"/*.go
echo "generated $(ls "$here/$package_dir" | wc -l) files in clients/go/$package_dir"
