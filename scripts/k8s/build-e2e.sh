#!/usr/bin/env bash
# Builds Kubernetes' end-to-end test binaries from the k8s.io/kubernetes Go
# module at the cluster's release, into a cache outside the repository:
#   e2e.test   k8s.io/kubernetes/test/e2e (go test -c)
#   ginkgo     github.com/onsi/ginkgo/v2/ginkgo at the version kubernetes requires
#   agnhost    k8s.io/kubernetes/test/images/agnhost (the e2e tests' Swiss-army
#              server and client; images/e2e.sh puts it in an image)
# in $K8S_E2E_BIN. A cached binary is not built again.
#
# Its own wrapper module (kube-wrapper.sh), beside the cluster's: the test
# packages need modules the components do not, and tidying them in must not
# move the components' dependency versions.
#
# Usage: build-e2e.sh [e2e.test|ginkgo|agnhost ...]   (default: all three)
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
. "$here/versions.sh"
. "$here/kube-wrapper.sh"

targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(e2e.test ginkgo agnhost)
for t in "${targets[@]}"; do
  case "$t" in
    e2e.test|ginkgo|agnhost) ;;
    *) echo "build-e2e.sh: unknown target '$t' (e2e.test, ginkgo or agnhost)" >&2; exit 2 ;;
  esac
done

out="$K8S_E2E_BIN"
missing() {
  local t
  for t in "${targets[@]}"; do [ -x "$out/$t" ] || echo "$t"; done
}
[ -z "$(missing)" ] && exit 0
command -v go >/dev/null || { echo "k8s-e2e: Go is needed to build $(missing | xargs)" >&2; exit 1; }

wrap="$EBMESH_CACHE/src/kubernetes-e2e-$K8S_VERSION"
mkdir -p "$wrap" "$out"
exec 9>"$wrap.lock"
flock 9
todo="$(missing)"
[ -z "$todo" ] && exit 0
export GOFLAGS=-mod=mod GOWORK=off CGO_ENABLED=0
# The packages e2e_test.go imports are test-only imports of a dependency,
# which `go mod tidy` would not keep; anchoring them keeps their modules.
k8s_wrapper_module "$wrap" \
  k8s.io/kubernetes/test/e2e \
  k8s.io/kubernetes/test/e2e/network \
  k8s.io/kubernetes/test/e2e/framework/debug/init \
  k8s.io/kubernetes/test/e2e/framework/metrics/init \
  k8s.io/kubernetes/test/e2e/framework/node/init \
  k8s.io/kubernetes/test/images/agnhost/netexec \
  k8s.io/kubernetes/test/images/agnhost/webhook \
  github.com/onsi/ginkgo/v2/ginkgo/command
ld="$(k8s_version_ldflags)"

cd "$wrap"
for t in $todo; do
  started=$SECONDS
  echo "k8s-e2e: building $t $K8S_VERSION (a cold e2e.test build takes tens of minutes)" >&2
  case "$t" in
    e2e.test)
      # As hack/lib/golang.sh builds test binaries: go test -c, release tags;
      # no vet (go test runs it by default; it is upstream CI's job, not a build's).
      go test -c -vet=off -trimpath -tags "$K8S_GO_TAGS" -ldflags "-s -w $ld" -o "$out/$t.tmp" k8s.io/kubernetes/test/e2e ;;
    ginkgo)
      # The version kubernetes' go.mod requires, so the CLI and the
      # library compiled into e2e.test agree.
      go build -trimpath -ldflags "-s -w" -o "$out/$t.tmp" github.com/onsi/ginkgo/v2/ginkgo ;;
    agnhost)
      # The image's version, as agnhost's own build stamps it.
      agnhost_version="$(cat "$(go env GOMODCACHE)/k8s.io/kubernetes@$K8S_VERSION/test/images/agnhost/VERSION")"
      go build -trimpath -ldflags "-s -w -X main.Version=$agnhost_version" -o "$out/$t.tmp" k8s.io/kubernetes/test/images/agnhost ;;
  esac
  mv "$out/$t.tmp" "$out/$t"
  echo "k8s-e2e: built $t in $((SECONDS - started)) s" >&2
done
