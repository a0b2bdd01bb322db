#!/usr/bin/env bash
# Builds the test cluster's other Go programs from their modules at pinned
# releases, each in its own wrapper module (so one's dependency versions
# never move another's), into a cache outside the repository:
#   etcd     go.etcd.io/etcd/server/v3   ->  $ETCD_BIN/etcd
#   helm     helm.sh/helm/v4/cmd/helm    ->  $HELM_BIN/helm
#   coredns  github.com/coredns/coredns  ->  $COREDNS_BIN/coredns
# A tool whose binary is cached is not built again.
#
# Why wrapper modules: etcd's server module replaces its sibling modules with
# ../ paths, so `go install module@version` refuses it; a wrapper that
# requires it resolves the siblings at their released versions instead.
#
# Usage: build-tools.sh [etcd|helm|coredns ...]   (default: all three)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"

export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0

# wrapper DIR MODULE VERSION MAINFILE: a module at DIR that requires
# MODULE@VERSION, tidied against MAINFILE (copied in as main.go).
wrapper() {
  local dir="$1" module="$2" version="$3" main="$4"
  [ -f "$dir/.ready" ] && return 0
  echo "k8s-tools: preparing the wrapper module for $module $version" >&2
  rm -rf "$dir" && mkdir -p "$dir"
  (
    cd "$dir"
    go mod init "ebmesh.local/build-$(basename "$dir")" >/dev/null 2>&1
    go mod edit -require "$module@$version"
    cp "$main" main.go
    # The module's own Go version, so the wrapper's language version matches.
    local goline
    goline="$(go mod download -json "$module@$version" | sed -n 's/.*"GoMod": "\(.*\)",*/\1/p' | xargs grep -E '^go [0-9.]+$')"
    go mod edit -go "${goline#go }"
    go mod tidy >/dev/null
    touch .ready
  )
}

# build NAME OUTDIR DIR PKG LDFLAGS
build() {
  local name="$1" out="$2" dir="$3" pkg="$4" ld="$5"
  local started=$SECONDS
  echo "k8s-tools: building $name (cold builds take minutes)" >&2
  mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w $ld" -o "$out/$name.tmp" "$pkg")
  mv "$out/$name.tmp" "$out/$name"
  echo "k8s-tools: built $name in $((SECONDS - started)) s" >&2
}

build_etcd() {
  local dir="$EBMESH_CACHE/src/etcd-$ETCD_VERSION"
  local main="$dir.main.go"
  mkdir -p "$EBMESH_CACHE/src"
  # The server module's root package is etcd's main; the wrapper's main.go
  # only anchors the dependency for `go mod tidy`.
  printf 'package main\n\nimport _ "go.etcd.io/etcd/server/v3/etcdmain"\n\nfunc main() {}\n' > "$main"
  wrapper "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION" "$main"
  rm -f "$main"
  # The version itself is a constant in go.etcd.io/etcd/api/v3/version;
  # GitSHA is what `etcd --version` prints beside it.
  build etcd "$ETCD_BIN" "$dir" go.etcd.io/etcd/server/v3 \
    "-X 'go.etcd.io/etcd/api/v3/version.GitSHA=module-$ETCD_VERSION'"
}

build_helm() {
  local dir="$EBMESH_CACHE/src/helm-$HELM_VERSION"
  local main="$dir.main.go"
  mkdir -p "$EBMESH_CACHE/src"
  printf 'package main\n\nimport (\n\t_ "helm.sh/helm/v4/pkg/cmd"\n\t_ "k8s.io/client-go/plugin/pkg/client/auth"\n)\n\nfunc main() {}\n' > "$main"
  wrapper "$dir" helm.sh/helm/v4 "$HELM_VERSION" "$main"
  rm -f "$main"
  # As helm's Makefile sets them for a tagged release (empty metadata).
  build helm "$HELM_BIN" "$dir" helm.sh/helm/v4/cmd/helm \
    "-X 'helm.sh/helm/v4/internal/version.version=$HELM_VERSION' -X 'helm.sh/helm/v4/internal/version.metadata=' -X 'helm.sh/helm/v4/internal/version.gitTreeState=clean'"
}

build_coredns() {
  local dir="$EBMESH_CACHE/src/coredns-$COREDNS_VERSION"
  mkdir -p "$EBMESH_CACHE/src"
  # Our own main with the plugins the cluster's Corefile uses (and a few a
  # user may add), not CoreDNS' full set: the cloud plugins (route53, azure,
  # clouddns) would pull in their SDKs for nothing.
  wrapper "$dir" github.com/coredns/coredns "$COREDNS_VERSION" "$here/coredns/main.go"
  build coredns "$COREDNS_BIN" "$dir" . \
    "-X 'github.com/coredns/coredns/coremain.GitCommit=module-$COREDNS_VERSION'"
}

tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(etcd helm coredns)
for t in "${tools[@]}"; do
  case "$t" in
    etcd) bin="$ETCD_BIN/etcd" ;;
    helm) bin="$HELM_BIN/helm" ;;
    coredns) bin="$COREDNS_BIN/coredns" ;;
    *) echo "build-tools.sh: unknown tool '$t' (etcd, helm or coredns)" >&2; exit 2 ;;
  esac
  [ -x "$bin" ] && continue
  command -v go >/dev/null || { echo "k8s-tools: Go is needed to build $t" >&2; exit 1; }
  mkdir -p "$EBMESH_CACHE/src"
  (
    # One build per tool at a time (go build -mod=mod edits the wrapper).
    exec 9>"$EBMESH_CACHE/src/$t.lock"
    flock 9
    [ -x "$bin" ] || "build_$t"
  )
done
