#!/usr/bin/env bash
# Regenerates src/gen/ (committed) from ../../proto and the vendored proto/google/rpc, with the
# buf CLI and protoc-gen-es pinned in package.json (run `npm ci` first). Deterministic: the
# output depends only on the protos and the pinned versions.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ ! -x node_modules/.bin/buf || ! -x node_modules/.bin/protoc-gen-es ]]; then
  echo "clients/typescript/generate.sh: run 'npm ci' in clients/typescript first" >&2
  exit 1
fi

rm -rf src/gen
# npx puts node_modules/.bin (protoc-gen-es among them) on PATH for buf.
npx --no-install buf generate
