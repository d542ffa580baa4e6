#!/usr/bin/env bash
# CI for the TypeScript client: installs its npm packages (pinned by package-lock.json),
# regenerates src/gen from proto/, builds, and runs the live tests (node:test) against a real
# server: each test file starts `$CONCLAVE_BIN serve` on a free loopback port.
#
#   CONCLAVE_BIN=/abs/path/to/conclave clients/typescript/ci.sh
#
# Needs Node.js 20+ and npm (the machine's). The headless-browser test needs Chromium: under CI
# this script installs Debian's `chromium` when it is missing; elsewhere that test is skipped
# without it (set CONCLAVE_BROWSER=/path/to/chromium to point at one).
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

if [[ -z "${CONCLAVE_BIN:-}" ]]; then
  echo "clients/typescript/ci.sh: set CONCLAVE_BIN to the absolute path of a built conclave binary" >&2
  exit 2
fi
[[ -x "$CONCLAVE_BIN" ]] || { echo "clients/typescript/ci.sh: $CONCLAVE_BIN is not an executable" >&2; exit 2; }

command -v node >/dev/null 2>&1 && command -v npm >/dev/null 2>&1 || {
  echo "clients/typescript/ci.sh: node and npm are needed (Node.js 20 or newer)" >&2
  exit 2
}
node_major=$(node -p 'process.versions.node.split(".")[0]')
if (( node_major < 20 )); then
  echo "clients/typescript/ci.sh: Node.js 20 or newer is needed, this is $(node --version)" >&2
  exit 2
fi

if [[ -n "${CI:-}" && -z "${CONCLAVE_BROWSER:-}" ]] && ! command -v chromium >/dev/null 2>&1; then
  echo "== apt-get install chromium (for the headless-browser test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq </dev/null
  apt-get install -y -qq --no-install-recommends chromium </dev/null >/dev/null
  apt-get clean
fi

# `npm install` bound to the committed lock rather than `npm ci`: the registry this project uses
# serves only the Linux builds of the buf CLI (@bufbuild/buf-<platform>), so the lock cannot
# list the other platforms' optional packages, and `npm ci` refuses a lock without them. The lock
# must come out of the install unchanged, which is what `npm ci` would check.
echo "== npm install (from package-lock.json)"
lock_before=$(sha256sum package-lock.json)
npm install --no-audit --no-fund
if [[ "$(sha256sum package-lock.json)" != "$lock_before" ]]; then
  echo "clients/typescript/ci.sh: npm install changed package-lock.json: package.json and the lock are out of sync" >&2
  git --no-pager diff --stat -- package-lock.json >&2 || true
  exit 1
fi

echo "== generate.sh"
./generate.sh

echo "== build"
npm run --silent build
npm run --silent build:test

echo "== live tests against $CONCLAVE_BIN"
node --test --test-reporter=spec build/test/*.test.js
