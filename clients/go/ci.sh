#!/usr/bin/env bash
# CI for the Go client: installs what it needs, regenerates the generated code, then gofmt,
# go vet, go build and the live tests (go test) against a real `conclave serve`.
#
#   CONCLAVE_BIN=/abs/path/to/conclave clients/go/ci.sh
#
# Without CONCLAVE_BIN it uses target/debug/conclave of this repository (build it first).
#
# Go comes from Debian (golang-go, Go 1.19) with the libraries from Debian's golang-*-dev
# packages under /usr/share/gocode, so nothing is downloaded from the Go module proxy: the
# build runs in GOPATH mode (GO111MODULE=off) in a temporary GOPATH whose
# src/conclave.dev/client is a symlink to clients/go. Installs are skipped when already done.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../.." && pwd)"

section() { echo; echo "==== clients/go: $*"; }

# ---- Debian packages ----
# golang-github-golang-protobuf-1-5-dev is named explicitly: the grpc and genproto packages
# accept the older 1-3 (a pre-APIv2 github.com/golang/protobuf), which cannot carry the
# messages protoc-gen-go 1.28 generates.
packages=(
  golang-go
  protoc-gen-go
  protoc-gen-go-grpc
  golang-google-grpc-dev
  golang-google-protobuf-dev
  golang-google-genproto-dev
  golang-golang-x-net-dev
  golang-github-golang-protobuf-1-5-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [[ ${#missing[@]} -gt 0 ]]; then
  section "apt-get install ${missing[*]}"
  sudo=()
  [[ $(id -u) -eq 0 ]] || sudo=(sudo)
  "${sudo[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -qq --no-install-recommends "${packages[@]}" </dev/null
fi
go version

# ---- generate (installs the pinned grpcio-tools on first use) ----
section "generate.sh"
"$here/generate.sh"

# ---- a GOPATH in which clients/go is conclave.dev/client ----
gopath="$(mktemp -d)"
cleanup() { rm -rf "$gopath"; }
trap cleanup EXIT
mkdir -p "$gopath/src/conclave.dev"
ln -s "$here" "$gopath/src/conclave.dev/client"
export GO111MODULE=off GOFLAGS= GOPATH="$gopath:/usr/share/gocode"
cd "$gopath/src/conclave.dev/client"

section "gofmt"
unformatted=$(gofmt -l conclave)
if [[ -n "$unformatted" ]]; then
  echo "not gofmt-formatted:" >&2
  echo "$unformatted" >&2
  exit 1
fi

section "go vet ./..."
go vet ./...

section "go build ./..."
go build ./...

# ---- live tests ----
bin="${CONCLAVE_BIN:-$root/target/debug/conclave}"
if [[ ! -x "$bin" ]]; then
  echo "clients/go/ci.sh: no conclave binary at $bin (set CONCLAVE_BIN, or cargo build first)" >&2
  exit 1
fi
section "go test ./... (live, against $bin)"
CONCLAVE_BIN="$bin" go test -count=1 -timeout 10m -v ./...
