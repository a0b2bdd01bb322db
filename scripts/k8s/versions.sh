# Pinned versions of the test cluster's parts, and where their builds are
# cached (outside the repository, one folder per component and version, so a
# version bump builds anew and an unchanged pin builds nothing).
#
# Kubernetes 1.35: the newest release that still supports containerd 1.x
# (Debian 12 ships containerd 1.6.20, which speaks CRI v1 but has no
# RuntimeConfig RPC) and, with failCgroupV1: false, cgroup v1 hosts.
K8S_VERSION=v1.35.4
# etcd 3.6: the series Kubernetes 1.35 is tested with (>= 3.5.11 required).
ETCD_VERSION=v3.6.16
# Helm 4 (the current major); its chart format v2 is the one Helm 3 reads.
HELM_VERSION=v4.3.2
# CoreDNS: cluster DNS for service names (the conformance tests resolve them).
COREDNS_VERSION=v1.15.0
# The pause binary comes from k8s.io/kubernetes' build/pause; its Makefile
# names this tag, and the sandbox image is named after it.
PAUSE_VERSION=3.10.1
GATEWAY_API_VERSION=v1.4.1
EBMESH_CACHE="${EBMESH_CACHE:-/var/cache/ebmesh}"
K8S_BIN="$EBMESH_CACHE/k8s-$K8S_VERSION/bin"
K8S_E2E_BIN="$EBMESH_CACHE/k8s-e2e-$K8S_VERSION/bin"
ETCD_BIN="$EBMESH_CACHE/etcd-$ETCD_VERSION/bin"
HELM_BIN="$EBMESH_CACHE/helm-$HELM_VERSION/bin"
COREDNS_BIN="$EBMESH_CACHE/coredns-$COREDNS_VERSION/bin"
TOOLS_BIN="$EBMESH_CACHE/tools/bin"
export EBMESH_CACHE K8S_VERSION ETCD_VERSION HELM_VERSION COREDNS_VERSION PAUSE_VERSION \
  GATEWAY_API_VERSION K8S_BIN K8S_E2E_BIN ETCD_BIN HELM_BIN COREDNS_BIN TOOLS_BIN
# Gateway API's conformance suite is built at GATEWAY_API_VERSION (the CRDs'
# version). Its mesh tests run Istio's echo app (client and server; upstream's
# echo-advanced image is Istio's app 1.21.2). istio.io/istio has no release
# versions on the Go module proxy, only commits: this is the one built.
ISTIO_ECHO_VERSION=v0.0.0-20260827124520-eed52ebb66ad
GATEWAY_CONFORMANCE_BIN="$EBMESH_CACHE/gateway-api-$GATEWAY_API_VERSION/bin"
ISTIO_ECHO_BIN="$EBMESH_CACHE/istio-echo-$ISTIO_ECHO_VERSION/bin"
export ISTIO_ECHO_VERSION GATEWAY_CONFORMANCE_BIN ISTIO_ECHO_BIN
# cyclonus: generated NetworkPolicy cases, probed every pod to every pod
# (scripts/conformance.sh cyclonus). v0.5.6 is its newest release.
CYCLONUS_VERSION=v0.5.6
CYCLONUS_BIN="$EBMESH_CACHE/cyclonus-$CYCLONUS_VERSION/bin"
export CYCLONUS_VERSION CYCLONUS_BIN
