# The test cluster's fixed facts: where its state lives, its addresses and
# its ports. One place for each; docs/kubernetes-lab.md explains the choices.
#
# Addresses stay clear of the ebmesh lab's (pods 10.244/16 and 10.245/16,
# services 10.96/16 and 10.97/16) and of eth0's 192.0.2.0/24. Ports stay clear
# of ebmesh's (9464, 9900, 15001, 15008, 15020), of the components' defaults
# (another cluster on the host would not collide) and of the ephemeral range
# (32768-60999).

# Persistent state (certificates, etcd, containerd's root, kubelet's root,
# logs) and runtime state (PID files, sockets, containerd's state).
K8S_STATE=/var/lib/ebmesh-k8s
K8S_RUN=/run/ebmesh-k8s
K8S_PKI="$K8S_STATE/pki"
K8S_LOGS="$K8S_STATE/logs"
K8S_ETC="$K8S_STATE/etc"
K8S_ADMIN_KUBECONFIG="$K8S_PKI/admin.kubeconfig"
K8S_CONTAINERD_SOCK="$K8S_RUN/containerd/containerd.sock"

K8S_NODE_NAME=ebmesh-node
K8S_CLUSTER_DOMAIN=cluster.local
# Pods: the cluster CIDR; the node's share is the first /24 (the
# controller-manager allocates it to the only node, the CNI config uses it).
K8S_POD_CIDR=10.252.0.0/16
K8S_NODE_POD_CIDR=10.252.0.0/24
K8S_POD_GATEWAY=10.252.0.1
# Services: nothing answers these addresses but ebmesh's socket translation;
# the host routes the whole range as unreachable.
K8S_SERVICE_CIDR=10.253.0.0/16
K8S_KUBERNETES_SERVICE_IP=10.253.0.1
K8S_DNS_SERVICE_IP=10.253.0.10
# The node's own address, a /32 on the loopback device (this kernel has no
# dummy links): the API server and the kubelet listen here (not on eth0), and
# it is the `kubernetes` Service's endpoint. Pods reach it through their
# default route to the bridge (the host).
K8S_HOST_IP=10.254.0.1
K8S_BRIDGE=ebk8sbr0

# Dual-stack: IPv6 beside each IPv4 range (ULA, nothing on the host routes
# them; clear of the ebmesh lab's fd00:eb:96::/112 and fd00:eb:244::/56).
# IPv4 stays the primary family (listed first), as the mesh requires.
K8S_POD_CIDR6=fd00:eb:252::/56
K8S_NODE_POD_CIDR6=fd00:eb:252::/64
K8S_POD_GATEWAY6=fd00:eb:252::1
K8S_SERVICE_CIDR6=fd00:eb:253::/112
K8S_HOST_IP6=fd00:eb:254::1
# The ranges as Kubernetes' flags (and ebmesh's) take them: "V4,V6".
K8S_POD_CIDRS="$K8S_POD_CIDR,$K8S_POD_CIDR6"
K8S_SERVICE_CIDRS="$K8S_SERVICE_CIDR,$K8S_SERVICE_CIDR6"


K8S_APISERVER_PORT=17443
K8S_ETCD_CLIENT_PORT=17379
K8S_ETCD_PEER_PORT=17380
K8S_CONTROLLER_MANAGER_PORT=17257
K8S_SCHEDULER_PORT=17259
K8S_KUBELET_PORT=17250
K8S_KUBELET_HEALTHZ_PORT=17248
K8S_CONTAINERD_STREAM_PORT=17010
K8S_APISERVER_URL="https://$K8S_HOST_IP:$K8S_APISERVER_PORT"

# Image names, exactly as the manifests and containerd's config use them.
K8S_PAUSE_IMAGE="ebmesh.local/pause:$PAUSE_VERSION"
K8S_TOOLBOX_IMAGE=ebmesh.local/toolbox:1
K8S_COREDNS_IMAGE="ebmesh.local/coredns:${COREDNS_VERSION#v}"
K8S_AGENT_REPOSITORY=ebmesh.local/ebmesh
K8S_IMAGE_CACHE="$EBMESH_CACHE/images"
