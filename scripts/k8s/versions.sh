# Pinned versions of the test cluster's parts, and where their builds are
# cached (outside the repository, one folder per version).
#
# Kubernetes 1.35: the newest release that still supports containerd 1.x
# (Debian 12 ships containerd 1.6.20, which speaks CRI v1 but has no
# RuntimeConfig RPC) and, with failCgroupV1: false, cgroup v1 hosts.
K8S_VERSION=v1.35.4
ETCD_VERSION=v3.6.16
HELM_VERSION=v3.21.4
GATEWAY_API_VERSION=v1.4.1
EBMESH_CACHE="${EBMESH_CACHE:-/var/cache/ebmesh}"
K8S_BIN="$EBMESH_CACHE/k8s-$K8S_VERSION/bin"
TOOLS_BIN="$EBMESH_CACHE/tools/bin"
export EBMESH_CACHE K8S_VERSION ETCD_VERSION HELM_VERSION GATEWAY_API_VERSION K8S_BIN TOOLS_BIN
