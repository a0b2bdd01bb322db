# The test cluster's daemons: their configuration files and how each is
# started (detached, PID file, log under $K8S_LOGS). Each start function
# starts its daemon only if it is not running, then waits until it serves.

_kubectl_admin() { "$K8S_BIN/kubectl" --kubeconfig "$K8S_ADMIN_KUBECONFIG" "$@"; }

# curl with the admin client certificate (health endpoints of the API server).
_curl_admin() {
  curl -fsS --max-time 3 --cacert "$K8S_PKI/ca.crt" \
    --cert "$K8S_PKI/admin.crt" --key "$K8S_PKI/admin.key" "$@"
}

start_etcd() {
  k8s_pid etcd >/dev/null && return 0
  k8s_say "starting etcd $ETCD_VERSION on 127.0.0.1:$K8S_ETCD_CLIENT_PORT"
  mkdir -p "$K8S_STATE/etcd" && chmod 700 "$K8S_STATE/etcd"
  local peer="https://127.0.0.1:$K8S_ETCD_PEER_PORT"
  k8s_start etcd "$ETCD_BIN/etcd" \
    --name ebmesh-k8s \
    --data-dir "$K8S_STATE/etcd" \
    --listen-client-urls "https://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
    --advertise-client-urls "https://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
    --listen-peer-urls "$peer" --initial-advertise-peer-urls "$peer" \
    --initial-cluster "ebmesh-k8s=$peer" --initial-cluster-state new \
    --cert-file "$K8S_PKI/etcd-server.crt" --key-file "$K8S_PKI/etcd-server.key" \
    --trusted-ca-file "$K8S_PKI/etcd-ca.crt" --client-cert-auth \
    --peer-cert-file "$K8S_PKI/etcd-server.crt" --peer-key-file "$K8S_PKI/etcd-server.key" \
    --peer-trusted-ca-file "$K8S_PKI/etcd-ca.crt" --peer-client-cert-auth \
    --log-level warn
  k8s_wait 60 "etcd to serve (log: $K8S_LOGS/etcd.log)" curl -fsS --max-time 2 \
    --cacert "$K8S_PKI/etcd-ca.crt" --cert "$K8S_PKI/apiserver-etcd-client.crt" \
    --key "$K8S_PKI/apiserver-etcd-client.key" "https://127.0.0.1:$K8S_ETCD_CLIENT_PORT/health"
}

start_apiserver() {
  k8s_pid kube-apiserver >/dev/null && return 0
  k8s_say "starting kube-apiserver $K8S_VERSION on $K8S_APISERVER_URL"
  k8s_start kube-apiserver "$K8S_BIN/kube-apiserver" \
    --advertise-address "$K8S_HOST_IP" --bind-address "$K8S_HOST_IP" \
    --secure-port "$K8S_APISERVER_PORT" \
    --etcd-servers "https://127.0.0.1:$K8S_ETCD_CLIENT_PORT" \
    --etcd-cafile "$K8S_PKI/etcd-ca.crt" \
    --etcd-certfile "$K8S_PKI/apiserver-etcd-client.crt" --etcd-keyfile "$K8S_PKI/apiserver-etcd-client.key" \
    --service-cluster-ip-range "$K8S_SERVICE_CIDRS" \
    --client-ca-file "$K8S_PKI/ca.crt" \
    --tls-cert-file "$K8S_PKI/apiserver.crt" --tls-private-key-file "$K8S_PKI/apiserver.key" \
    --kubelet-client-certificate "$K8S_PKI/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$K8S_PKI/apiserver-kubelet-client.key" \
    --kubelet-certificate-authority "$K8S_PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --service-account-issuer "https://kubernetes.default.svc.$K8S_CLUSTER_DOMAIN" \
    --service-account-key-file "$K8S_PKI/sa.pub" \
    --service-account-signing-key-file "$K8S_PKI/sa.key" \
    --requestheader-client-ca-file "$K8S_PKI/front-proxy-ca.crt" \
    --requestheader-allowed-names front-proxy-client \
    --requestheader-username-headers X-Remote-User --requestheader-group-headers X-Remote-Group \
    --requestheader-extra-headers-prefix X-Remote-Extra- \
    --proxy-client-cert-file "$K8S_PKI/front-proxy-client.crt" --proxy-client-key-file "$K8S_PKI/front-proxy-client.key" \
    --authorization-mode Node,RBAC \
    --enable-admission-plugins NodeRestriction \
    --allow-privileged=true \
    --enable-aggregator-routing=true \
    --profiling=false \
    --v=1
  # --enable-aggregator-routing: the API server (a host process, outside the
  # mesh) reaches webhooks and aggregated APIs at their endpoints, never at
  # a Service VIP that only the mesh translates.
  k8s_wait 120 "kube-apiserver to be ready (log: $K8S_LOGS/kube-apiserver.log)" \
    _curl_admin "$K8S_APISERVER_URL/readyz"
}

start_controller_manager() {
  k8s_pid kube-controller-manager >/dev/null && return 0
  k8s_say "starting kube-controller-manager"
  local kc="$K8S_PKI/controller-manager.kubeconfig"
  k8s_start kube-controller-manager "$K8S_BIN/kube-controller-manager" \
    --kubeconfig "$kc" --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$K8S_CONTROLLER_MANAGER_PORT" \
    --cert-dir "$K8S_STATE/controller-manager" \
    --service-account-private-key-file "$K8S_PKI/sa.key" \
    --root-ca-file "$K8S_PKI/ca.crt" \
    --cluster-signing-cert-file "$K8S_PKI/ca.crt" --cluster-signing-key-file "$K8S_PKI/ca.key" \
    --use-service-account-credentials=true \
    --allocate-node-cidrs=true --cluster-cidr "$K8S_POD_CIDRS" \
    --node-cidr-mask-size-ipv4 24 --node-cidr-mask-size-ipv6 64 \
    --service-cluster-ip-range "$K8S_SERVICE_CIDRS" \
    --leader-elect=false \
    --profiling=false \
    --v=1
  k8s_wait 60 "kube-controller-manager to serve (log: $K8S_LOGS/kube-controller-manager.log)" \
    curl -fsSk --max-time 2 "https://127.0.0.1:$K8S_CONTROLLER_MANAGER_PORT/healthz"
}

start_scheduler() {
  k8s_pid kube-scheduler >/dev/null && return 0
  k8s_say "starting kube-scheduler"
  local kc="$K8S_PKI/scheduler.kubeconfig"
  mkdir -p "$K8S_ETC"
  cat > "$K8S_ETC/kube-scheduler.yaml" <<EOF
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
clientConnection:
  kubeconfig: $kc
leaderElection:
  leaderElect: false
EOF
  k8s_start kube-scheduler "$K8S_BIN/kube-scheduler" \
    --config "$K8S_ETC/kube-scheduler.yaml" \
    --authentication-kubeconfig "$kc" --authorization-kubeconfig "$kc" \
    --bind-address 127.0.0.1 --secure-port "$K8S_SCHEDULER_PORT" \
    --cert-dir "$K8S_STATE/scheduler" \
    --profiling=false \
    --v=1
  k8s_wait 60 "kube-scheduler to serve (log: $K8S_LOGS/kube-scheduler.log)" \
    curl -fsSk --max-time 2 "https://127.0.0.1:$K8S_SCHEDULER_PORT/healthz"
}

# containerd: its root, state, socket, runc state and CNI files all under the
# cluster's state dirs (nothing in /var/lib/containerd, /etc/cni or /opt).
write_containerd_config() {
  mkdir -p "$K8S_ETC" "$K8S_STATE/cni/net.d" "$K8S_RUN/containerd"
  cat > "$K8S_ETC/containerd.toml" <<EOF
version = 2
root = "$K8S_STATE/containerd"
state = "$K8S_RUN/containerd"

[grpc]
  address = "$K8S_CONTAINERD_SOCK"

[plugins."io.containerd.internal.v1.opt"]
  path = "$K8S_STATE/containerd-opt"

[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$K8S_PAUSE_IMAGE"
  stream_server_address = "127.0.0.1"
  stream_server_port = "$K8S_CONTAINERD_STREAM_PORT"
  netns_mounts_under_state_dir = true
  # The machine's root lacks CAP_SYS_RESOURCE, so no process may lower its
  # oom_score_adj (the kubelet asks -998 for critical pods' sandboxes and runc
  # fails with "can't get final child's PID"): containerd clamps the score to
  # its own instead.
  restrict_oom_score_adj = true
  enable_selinux = false
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "/usr/sbin/runc"
        Root = "$K8S_RUN/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$K8S_STATE/cni/net.d"
    max_conf_num = 1
EOF
  # The node's pod network: one bridge, host-local addresses from the
  # node's /24 and /64 (dual-stack), default routes to the bridge (the host). No masquerade: pods
  # reach only the host and each other. portmap serves a pod's hostPort (a
  # CNI feature every cluster has, which the conformance suite's HostPort
  # test checks): DNAT on this host's own addresses to the pod, nothing
  # beyond the host.
  cat > "$K8S_STATE/cni/net.d/10-ebmesh-k8s.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "ebmesh-k8s",
  "plugins": [
    {
      "type": "bridge",
      "bridge": "$K8S_BRIDGE",
      "isGateway": true,
      "ipMasq": false,
      "hairpinMode": true,
      "ipam": {
        "type": "host-local",
        "dataDir": "$K8S_STATE/cni/ipam",
        "ranges": [
          [{ "subnet": "$K8S_NODE_POD_CIDR", "gateway": "$K8S_POD_GATEWAY" }],
          [{ "subnet": "$K8S_NODE_POD_CIDR6", "gateway": "$K8S_POD_GATEWAY6" }]
        ],
        "routes": [{ "dst": "0.0.0.0/0" }, { "dst": "::/0" }]
      }
    },
    { "type": "portmap", "capabilities": { "portMappings": true } }
  ]
}
EOF
}

_ctr() { ctr --address "$K8S_CONTAINERD_SOCK" "$@"; }

# k8s_import REF ARCHIVE: into containerd's k8s.io namespace (the one the
# CRI uses), unless this very archive is the one imported under REF already.
k8s_import() {
  local ref="$1" archive="$2" stamp
  stamp="$K8S_STATE/imported/$(printf '%s' "$ref" | tr '/:' '__')"
  if [ "$(cat "$stamp" 2>/dev/null)" = "$archive" ] && _ctr -n k8s.io images ls -q "name==$ref" | grep -qx "$ref"; then
    return 0
  fi
  k8s_say "importing $ref into containerd"
  _ctr -n k8s.io images import "$archive" >/dev/null
  _ctr -n k8s.io images ls -q "name==$ref" | grep -qx "$ref" \
    || k8s_die "containerd does not list $ref after importing $archive"
  mkdir -p "$K8S_STATE/imported"
  printf '%s\n' "$archive" > "$stamp"
}

start_containerd() {
  k8s_pid containerd >/dev/null && return 0
  k8s_say "starting containerd $(containerd --version | awk '{print $3}')"
  write_containerd_config
  k8s_start containerd /usr/bin/containerd --config "$K8S_ETC/containerd.toml"
  k8s_wait 60 "containerd to serve (log: $K8S_LOGS/containerd.log)" _ctr version
}

start_kubelet() {
  k8s_pid kubelet >/dev/null && return 0
  k8s_say "starting kubelet $K8S_VERSION (node $K8S_NODE_NAME)"
  mkdir -p "$K8S_ETC" "$K8S_STATE/kubelet" "$K8S_STATE/pod-logs"
  cat > "$K8S_ETC/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $K8S_HOST_IP
port: $K8S_KUBELET_PORT
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
healthzPort: $K8S_KUBELET_HEALTHZ_PORT
tlsCertFile: $K8S_PKI/kubelet-serving.crt
tlsPrivateKeyFile: $K8S_PKI/kubelet-serving.key
rotateCertificates: false
serverTLSBootstrap: false
authentication:
  anonymous:
    enabled: false
  webhook:
    enabled: true
  x509:
    clientCAFile: $K8S_PKI/ca.crt
authorization:
  mode: Webhook
containerRuntimeEndpoint: unix://$K8S_CONTAINERD_SOCK
# No systemd here: cgroupfs. containerd 1.6 has no RuntimeConfig RPC, so the
# kubelet uses this setting instead of asking the runtime.
cgroupDriver: cgroupfs
cgroupsPerQOS: true
cgroupRoot: /
# The host is cgroup v1 (v2 mounted beside it at /sys/fs/cgroup/unified);
# 1.35 refuses v1 unless told not to.
failCgroupV1: false
failSwapOn: true
clusterDNS: [$K8S_DNS_SERVICE_IP]
clusterDomain: $K8S_CLUSTER_DOMAIN
# Pods resolve only through cluster DNS: the host's resolver is outside the
# machine and pods must not reach it (the host does not forward).
resolvConf: ""
podLogsDir: $K8S_STATE/pod-logs
staticPodPath: ""
# Generous thresholds: a shared test machine's disk must not evict pods.
evictionHard:
  memory.available: 100Mi
  nodefs.available: 1Gi
  imagefs.available: 1Gi
  nodefs.inodesFree: 1%
imageGCHighThresholdPercent: 98
imageGCLowThresholdPercent: 95
EOF
  k8s_start kubelet "$K8S_BIN/kubelet" \
    --config "$K8S_ETC/kubelet.yaml" \
    --kubeconfig "$K8S_PKI/kubelet.kubeconfig" \
    --root-dir "$K8S_STATE/kubelet" \
    --cert-dir "$K8S_STATE/kubelet/pki" \
    --hostname-override "$K8S_NODE_NAME" \
    --node-ip "$K8S_HOST_IP,$K8S_HOST_IP6" \
    --v=1
  k8s_wait 60 "kubelet to serve (log: $K8S_LOGS/kubelet.log)" \
    curl -fsS --max-time 2 "http://127.0.0.1:$K8S_KUBELET_HEALTHZ_PORT/healthz"
}

# The admin kubeconfig's RBAC is system:masters; the kubelet's webhook
# authorizer asks the API server whether the API server's own client cert
# (also system:masters) may exec, so nothing else needs binding.
wait_node_ready() {
  k8s_wait 120 "node $K8S_NODE_NAME to be Ready (log: $K8S_LOGS/kubelet.log)" \
    _kubectl_admin wait --for=condition=Ready "node/$K8S_NODE_NAME" --timeout=5s
}
