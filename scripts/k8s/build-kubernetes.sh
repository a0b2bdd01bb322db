#!/usr/bin/env bash
# Builds the Kubernetes components the test cluster runs, from the
# k8s.io/kubernetes Go module at one pinned release, into a cache outside the
# repository (one folder per version: a second run finds them and builds
# nothing).
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0 and replaces them with ./staging paths that its module zip does
# not carry, so `go install k8s.io/kubernetes/cmd/X@v` refuses. A wrapper
# module pins each staging module to its matching v0.MINOR.PATCH release.
#
# Usage: build-kubernetes.sh [component ...]   (default: the cluster's set)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"

components=("$@")
if [ ${#components[@]} -eq 0 ]; then
  components=(kube-apiserver kube-controller-manager kube-scheduler kubelet kubectl kube-proxy)
fi

out="$K8S_BIN"
mkdir -p "$out"
missing=()
for c in "${components[@]}"; do
  [ -x "$out/$(basename "$c")" ] || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] && exit 0
command -v go >/dev/null || { echo "k8s: Go is needed to build ${missing[*]}" >&2; exit 1; }

wrap="$EBMESH_CACHE/src/kubernetes-$K8S_VERSION"
mkdir -p "$wrap"
# One build at a time per wrapper module: `go build -mod=mod` edits its
# go.mod, and two runs would race on it and on the .tmp outputs.
exec 9>"$wrap.lock"
flock 9
missing=()
for c in "${components[@]}"; do
  [ -x "$out/$(basename "$c")" ] || missing+=("$c")
done
[ ${#missing[@]} -eq 0 ] && exit 0
export GOFLAGS=-mod=mod GOWORK=off
if [ ! -f "$wrap/.ready" ]; then
  echo "k8s: preparing the wrapper module for k8s.io/kubernetes $K8S_VERSION" >&2
  (
    cd "$wrap"
    rm -f go.mod go.sum
    go mod init ebmesh.local/k8s-build >/dev/null 2>&1
    go mod download k8s.io/kubernetes@"$K8S_VERSION"
    kdir="$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION"
    staging_version="v0.${K8S_VERSION#v1.}"
    # Go version and the replace lines: one per staging module kubernetes'
    # own go.mod replaces with ./staging.
    goline="$(grep -E '^go [0-9.]+$' "$kdir/go.mod")"
    sed -i "s/^go .*/$goline/" go.mod
    grep -E '=> \./staging/src/' "$kdir/go.mod" | awk '{print $1}' | while read -r m; do
      echo "replace $m => $m $staging_version" >> go.mod
    done
    go mod edit -require k8s.io/kubernetes@"$K8S_VERSION"
    # The same pins for other replaces kubernetes carries (none today, but
    # a go.mod 'replace' of a third-party module would otherwise be lost).
    # They sit inside kubernetes' `replace ( ... )` block, without the keyword.
    grep -E '^\s*[a-z][^ ]* => [a-z][^ ]* v' "$kdir/go.mod" | grep -v '=> \./' \
      | sed -E 's/^\s*(replace\s+)?/replace /' >> go.mod || true
    printf 'package main\nimport _ "k8s.io/kubernetes/cmd/kubelet/app"\nfunc main() {}\n' > tools.go
    go mod tidy >/dev/null
    rm tools.go
    touch .ready
  )
fi

major="${K8S_VERSION#v}"; major="${major%%.*}"
minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
ld=""
for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
  ld="$ld -X '$pkg.gitVersion=$K8S_VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
  ld="$ld -X '$pkg.gitTreeState=clean' -X '$pkg.gitCommit=0000000000000000000000000000000000000000' -X '$pkg.buildDate=$date'"
done

cd "$wrap"
for c in "${missing[@]}"; do
  name="$(basename "$c")"
  case "$c" in
    */*) pkg="k8s.io/kubernetes/$c" ;;
    *) pkg="k8s.io/kubernetes/cmd/$c" ;;
  esac
  echo "k8s: building $name $K8S_VERSION (cold builds take minutes each)" >&2
  # Tags and flags as hack/lib/golang.sh uses them for release binaries.
  CGO_ENABLED=0 go build -trimpath -tags 'selinux,notest,grpcnotrace' \
    -ldflags "-s -w $ld" -o "$out/$name.tmp" "$pkg"
  mv "$out/$name.tmp" "$out/$name"
done
