#!/usr/bin/env bash
# Builds Gateway API's conformance suite and the echo servers its tests run,
# from their Go modules, into a cache outside the repository:
#   conformance.test  sigs.k8s.io/gateway-api/conformance (go test -c) at
#                     $GATEWAY_API_VERSION          -> $GATEWAY_CONFORMANCE_BIN
#   echo-basic        sigs.k8s.io/gateway-api/conformance/echo-basic (the
#                     gateway profiles' backend)    -> $GATEWAY_CONFORMANCE_BIN
#   server, client    istio.io/istio/pkg/test/echo/cmd/{server,client} (the
#                     mesh profile's echo app)      -> $ISTIO_ECHO_BIN
# Each module in its own wrapper module, as build-tools.sh does. A cached
# binary is not built again.
#
# Usage: build-gateway.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

# wrapper DIR MODULE VERSION PACKAGE...: a module at DIR requiring
# MODULE@VERSION at the module's own Go version, tidied against PACKAGEs.
wrapper() {
  local dir="$1" module="$2" version="$3"; shift 3
  [ -f "$dir/.ready" ] && return 0
  echo "gateway: preparing the wrapper module for $module $version" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init "ebmesh.local/build-$(basename "$dir")" >/dev/null 2>&1
    go mod edit -require "$module@$version"
    local goline p
    goline="$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' | xargs grep -E '^go [0-9.]+$')"
    go mod edit -go "${goline#go }"
    { printf 'package main\nimport (\n'; for p in "$@"; do printf '\t_ "%s"\n' "$p"; done; printf ')\nfunc main() {}\n'; } > tools.go
    go mod tidy >/dev/null
    rm tools.go
    touch .ready
  )
}

# build OUT DIR CMD... PACKAGE: runs the go CMD in DIR writing OUT.tmp, then
# OUT (-o goes before the package: go build takes no flag after it).
build() {
  local out="$1" dir="$2"; shift 2
  [ -x "$out" ] && return 0
  local started=$SECONDS
  echo "gateway: building $(basename "$out") (cold builds take minutes)" >&2
  mkdir -p "$(dirname "$out")"
  local pkg="${*: -1}"
  (cd "$dir" && "${@:1:$#-1}" -o "$out.tmp" "$pkg")
  mv "$out.tmp" "$out"
  echo "gateway: built $(basename "$out") in $((SECONDS - started)) s" >&2
}

mkdir -p "$EBMESH_CACHE/src"
gw="$EBMESH_CACHE/src/gateway-api-$GATEWAY_API_VERSION"
exec 9>"$gw.lock"; flock 9
# The suite's test package imports these; tidy keeps their modules.
wrapper "$gw" sigs.k8s.io/gateway-api "$GATEWAY_API_VERSION" \
  sigs.k8s.io/gateway-api/conformance \
  sigs.k8s.io/gateway-api/conformance/utils/suite \
  sigs.k8s.io/gateway-api/conformance/echo-basic/grpc
build "$GATEWAY_CONFORMANCE_BIN/conformance.test" "$gw" \
  go test -c -vet=off -trimpath -ldflags "-s -w" sigs.k8s.io/gateway-api/conformance
build "$GATEWAY_CONFORMANCE_BIN/echo-basic" "$gw" \
  go build -trimpath -ldflags "-s -w" sigs.k8s.io/gateway-api/conformance/echo-basic

istio="$EBMESH_CACHE/src/istio-echo-$ISTIO_ECHO_VERSION"
exec 7>"$istio.lock"; flock 7
wrapper "$istio" istio.io/istio "$ISTIO_ECHO_VERSION" \
  istio.io/istio/pkg/test/echo/server istio.io/istio/pkg/test/echo/cmd/client
for c in server client; do
  build "$ISTIO_ECHO_BIN/$c" "$istio" go build -trimpath -ldflags "-s -w" "istio.io/istio/pkg/test/echo/cmd/$c"
done
