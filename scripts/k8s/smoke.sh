# `k8s-lab.sh smoke`: checks a running cluster end to end, in a namespace of
# its own that it deletes again: two toolbox pods, nginx in one, curl from the
# other to it by pod IP through `kubectl exec`; CoreDNS answers a service name
# when asked at its pod IP; the pod's and container's cgroups sit where the
# cgroupfs driver puts them; no kube-proxy chain exists. Exits non-zero on the
# first failure, naming it.

_smoke_pass=0
_smoke_ok() { _smoke_pass=$((_smoke_pass + 1)); printf '  ok   %s\n' "$*" >&2; }
_smoke_fail() { printf '  FAIL %s\n' "$*" >&2; printf 'smoke: FAILED after %s checks passed\n' "$_smoke_pass" >&2; exit 1; }

cmd_smoke() {
  k8s_pid kube-apiserver >/dev/null && k8s_pid kubelet >/dev/null \
    || k8s_die "the cluster is not running (bash scripts/k8s-lab.sh up)"
  local ns="ebmesh-smoke-$$"
  # shellcheck disable=SC2064
  trap "_kubectl_admin delete namespace $ns --wait=false >/dev/null 2>&1 || true" EXIT
  k8s_say "smoke test in namespace $ns"
  _kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: Namespace
metadata:
  name: $ns
---
apiVersion: v1
kind: Pod
metadata:
  name: server
  namespace: $ns
  labels: {app: smoke-server}
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: nginx
    image: $K8S_TOOLBOX_IMAGE
    imagePullPolicy: Never
    command: [nginx, -g, daemon off;]
    ports: [{containerPort: 80}]
    readinessProbe:
      httpGet: {path: /, port: 80}
      periodSeconds: 1
---
apiVersion: v1
kind: Pod
metadata:
  name: client
  namespace: $ns
spec:
  terminationGracePeriodSeconds: 1
  containers:
  - name: toolbox
    image: $K8S_TOOLBOX_IMAGE
    imagePullPolicy: Never
EOF
  _kubectl_admin -n "$ns" wait --for=condition=Ready pod/server pod/client --timeout=120s >/dev/null \
    || _smoke_fail "pods did not become Ready: $(_kubectl_admin -n "$ns" get pods -o wide 2>&1; _kubectl_admin -n "$ns" get events 2>&1 | tail -n 10)"
  _smoke_ok "two toolbox pods Ready"

  local ip
  ip="$(_kubectl_admin -n "$ns" get pod server -o jsonpath='{.status.podIP}')"
  case "$ip" in "${K8S_NODE_POD_CIDR%.*/*}".*) ;; *) _smoke_fail "server pod IP '$ip' is outside the node's pod CIDR $K8S_NODE_POD_CIDR" ;; esac
  _smoke_ok "server pod IP $ip in $K8S_NODE_POD_CIDR"

  local body
  body="$(_kubectl_admin -n "$ns" exec client -- curl -fsS --max-time 5 "http://$ip/" 2>&1)" \
    || _smoke_fail "curl from the client pod to http://$ip/: $body"
  grep -qi nginx <<<"$body" || _smoke_fail "http://$ip/ answered without nginx's page: ${body:0:200}"
  _smoke_ok "kubectl exec: client pod curls nginx at http://$ip/"

  local dns answer
  dns="$(_kubectl_admin -n kube-system get pods -l k8s-app=kube-dns -o jsonpath='{.items[0].status.podIP}' 2>/dev/null || true)"
  if [ -n "$dns" ]; then
    answer="$(_kubectl_admin -n "$ns" exec client -- dig +short +time=3 +tries=1 "@$dns" "kubernetes.default.svc.$K8S_CLUSTER_DOMAIN" 2>&1)" \
      || _smoke_fail "dig at CoreDNS ($dns): $answer"
    [ "$answer" = "$K8S_KUBERNETES_SERVICE_IP" ] \
      || _smoke_fail "CoreDNS at $dns answered '$answer' for kubernetes.default, not $K8S_KUBERNETES_SERVICE_IP"
    _smoke_ok "CoreDNS at pod IP $dns resolves kubernetes.default.svc to $K8S_KUBERNETES_SERVICE_IP"
  else
    _smoke_ok "CoreDNS not deployed: DNS check skipped"
  fi

  # Where the cgroupfs driver puts a BestEffort pod and its container (the
  # agent finds pods by this path in the unified hierarchy).
  local uid cid cg
  uid="$(_kubectl_admin -n "$ns" get pod client -o jsonpath='{.metadata.uid}')"
  cid="$(_kubectl_admin -n "$ns" get pod client -o jsonpath='{.status.containerStatuses[0].containerID}')"
  cid="${cid#containerd://}"
  cg="/sys/fs/cgroup/unified/kubepods/besteffort/pod$uid/$cid"
  [ -d "$cg" ] || _smoke_fail "the client container's cgroup is not at $cg"
  grep -q . "$cg/cgroup.procs" || _smoke_fail "no process in $cg"
  _smoke_ok "container cgroup at /sys/fs/cgroup/unified/kubepods/besteffort/pod<UID>/<container-id>"

  if iptables-save 2>/dev/null | grep -q -- '^:KUBE-SERVICES'; then
    _smoke_fail "iptables-save shows a KUBE-SERVICES chain: something runs kube-proxy"
  fi
  _smoke_ok "no KUBE-SERVICES chain in iptables-save"

  _kubectl_admin delete namespace "$ns" --timeout=60s >/dev/null 2>&1 || true
  trap - EXIT
  printf 'smoke: all %s checks passed\n' "$_smoke_pass" >&2
}
