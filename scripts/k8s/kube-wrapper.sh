# The wrapper module that builds from k8s.io/kubernetes at $K8S_VERSION
# (sourced by build-kubernetes.sh and build-e2e.sh).
#
# k8s.io/kubernetes requires its staging modules (k8s.io/api, client-go, ...)
# at v0.0.0 and replaces them with ./staging paths that its module zip does
# not carry, so `go install k8s.io/kubernetes/cmd/X@v` refuses. A wrapper
# module pins each staging module to its matching v0.MINOR.PATCH release.

# k8s_wrapper_module DIR PACKAGE...: makes DIR a module that requires
# k8s.io/kubernetes at $K8S_VERSION, tidied against PACKAGEs (imported by a
# throwaway main, so tidy keeps what they need). Done once per DIR (.ready).
# The caller holds the lock on DIR and exports GOFLAGS=-mod=mod GOWORK=off.
k8s_wrapper_module() {
  local wrap="$1"; shift
  [ -f "$wrap/.ready" ] && return 0
  echo "k8s: preparing the wrapper module $(basename "$wrap") for k8s.io/kubernetes $K8S_VERSION" >&2
  mkdir -p "$wrap"
  (
    cd "$wrap"
    rm -f go.mod go.sum
    go mod init "ebmesh.local/$(basename "$wrap")" >/dev/null 2>&1
    go mod download k8s.io/kubernetes@"$K8S_VERSION"
    local kdir staging_version goline p
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
    {
      printf 'package main\nimport (\n'
      for p in "$@"; do printf '\t_ "%s"\n' "$p"; done
      printf ')\nfunc main() {}\n'
    } > tools.go
    go mod tidy >/dev/null
    rm tools.go
    touch .ready
  )
}

# k8s_version_ldflags: the -X flags upstream's release builds set, so the
# binaries report $K8S_VERSION.
k8s_version_ldflags() {
  local major minor date ld="" pkg
  major="${K8S_VERSION#v}"; major="${major%%.*}"
  minor="${K8S_VERSION#v*.}"; minor="${minor%%.*}"
  date="$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  for pkg in k8s.io/client-go/pkg/version k8s.io/component-base/version; do
    ld="$ld -X '$pkg.gitVersion=$K8S_VERSION' -X '$pkg.gitMajor=$major' -X '$pkg.gitMinor=$minor'"
    ld="$ld -X '$pkg.gitTreeState=clean' -X '$pkg.gitCommit=0000000000000000000000000000000000000000' -X '$pkg.buildDate=$date'"
  done
  printf '%s' "$ld"
}

# Tags as hack/lib/golang.sh uses them for release binaries and test
# binaries alike (the same tags let both builds share Go's build cache).
K8S_GO_TAGS='selinux,notest,grpcnotrace'
