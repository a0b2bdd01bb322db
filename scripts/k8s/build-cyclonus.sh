#!/usr/bin/env bash
# Builds cyclonus, the generated NetworkPolicy test runner
# (github.com/mattfenwick/cyclonus), from its module at $CYCLONUS_VERSION into
# a cache outside the repository: $CYCLONUS_BIN/cyclonus. Its go.mod has no
# replace directives, so `go install module@version` builds it as released.
# A cached binary is not built again.
#
# Usage: build-cyclonus.sh
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

[ -x "$CYCLONUS_BIN/cyclonus" ] && exit 0
mkdir -p "$CYCLONUS_BIN"
exec 9>"$CYCLONUS_BIN/.lock"; flock 9
[ -x "$CYCLONUS_BIN/cyclonus" ] && exit 0
started=$SECONDS
echo "cyclonus: building $CYCLONUS_VERSION (a cold build takes minutes)" >&2
GOBIN="$CYCLONUS_BIN" go install -trimpath -ldflags "-s -w" "github.com/mattfenwick/cyclonus/cmd/cyclonus@$CYCLONUS_VERSION"
echo "cyclonus: built in $((SECONDS - started)) s" >&2
