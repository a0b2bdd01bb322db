#!/usr/bin/env bash
# Builds the Kubernetes components the test cluster runs, from the
# k8s.io/kubernetes Go module at one pinned release, into a cache outside the
# repository (one folder per version: a second run finds them and builds
# nothing), in a wrapper module (kube-wrapper.sh says why).
#
# Usage: build-kubernetes.sh [component ...]   (default: the cluster's set)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"
. "$here/kube-wrapper.sh"

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
k8s_wrapper_module "$wrap" k8s.io/kubernetes/cmd/kubelet/app
ld="$(k8s_version_ldflags)"

cd "$wrap"
for c in "${missing[@]}"; do
  name="$(basename "$c")"
  case "$c" in
    */*) pkg="k8s.io/kubernetes/$c" ;;
    *) pkg="k8s.io/kubernetes/cmd/$c" ;;
  esac
  echo "k8s: building $name $K8S_VERSION (cold builds take minutes each)" >&2
  CGO_ENABLED=0 go build -trimpath -tags "$K8S_GO_TAGS" \
    -ldflags "-s -w $ld" -o "$out/$name.tmp" "$pkg"
  mv "$out/$name.tmp" "$out/$name"
done
