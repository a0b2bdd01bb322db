# What runs in the cluster once the node is Ready: cluster DNS (CoreDNS) and
# ebmesh itself (its Helm chart, with an agent image built from the checkout).

K8S_EBMESH_NAMESPACE=ebmesh-system
# The agent's instance name on the node: not the demo's (ebmesh), so `ebmesh up` and the cluster can share a host.
K8S_EBMESH_INSTANCE=k8s
K8S_EBMESH_RELEASE=ebmesh

_helm_admin() { "$HELM_BIN/helm" --kubeconfig "$K8S_ADMIN_KUBECONFIG" "$@"; }

# CoreDNS reaches the API server at its real address (set in the pod's
# environment, which wins over the kubelet's KUBERNETES_SERVICE_* variables),
# not through the `kubernetes` Service VIP: DNS then works before ebmesh is
# installed and while its agent restarts. It answers cluster.local and the
# reverse zones only: there is no upstream (pods have no way out of the host).
deploy_coredns() {
  k8s_say "deploying CoreDNS ($K8S_COREDNS_IMAGE) as kube-dns at $K8S_DNS_SERVICE_IP"
  _kubectl_admin apply -f - >/dev/null <<EOF
apiVersion: v1
kind: ServiceAccount
metadata:
  name: coredns
  namespace: kube-system
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: system:coredns
rules:
- apiGroups: [""]
  resources: [services, pods, namespaces]
  verbs: [list, watch]
- apiGroups: [discovery.k8s.io]
  resources: [endpointslices]
  verbs: [list, watch]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata:
  name: system:coredns
roleRef:
  apiGroup: rbac.authorization.k8s.io
  kind: ClusterRole
  name: system:coredns
subjects:
- kind: ServiceAccount
  name: coredns
  namespace: kube-system
---
apiVersion: v1
kind: ConfigMap
metadata:
  name: coredns
  namespace: kube-system
data:
  Corefile: |
    .:53 {
        errors
        health {
            lameduck 5s
        }
        ready
        kubernetes $K8S_CLUSTER_DOMAIN in-addr.arpa ip6.arpa {
            pods insecure
            fallthrough in-addr.arpa ip6.arpa
            ttl 30
        }
        prometheus :9153
        cache 30
        reload
        loadbalance
    }
---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
  labels: {k8s-app: kube-dns}
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      serviceAccountName: coredns
      priorityClassName: system-cluster-critical
      dnsPolicy: Default
      containers:
      - name: coredns
        image: $K8S_COREDNS_IMAGE
        imagePullPolicy: Never
        args: [-conf, /etc/coredns/Corefile]
        env:
        - {name: KUBERNETES_SERVICE_HOST, value: "$K8S_HOST_IP"}
        - {name: KUBERNETES_SERVICE_PORT, value: "$K8S_APISERVER_PORT"}
        ports:
        - {name: dns, containerPort: 53, protocol: UDP}
        - {name: dns-tcp, containerPort: 53, protocol: TCP}
        - {name: metrics, containerPort: 9153, protocol: TCP}
        resources:
          requests: {cpu: 50m, memory: 64Mi}
          limits: {memory: 170Mi}
        readinessProbe:
          httpGet: {path: /ready, port: 8181}
          periodSeconds: 2
        livenessProbe:
          httpGet: {path: /health, port: 8080}
          initialDelaySeconds: 30
          periodSeconds: 10
        securityContext:
          allowPrivilegeEscalation: false
          readOnlyRootFilesystem: true
          capabilities: {add: [NET_BIND_SERVICE], drop: [ALL]}
        volumeMounts:
        - {name: config, mountPath: /etc/coredns, readOnly: true}
      volumes:
      - name: config
        configMap: {name: coredns}
---
apiVersion: v1
kind: Service
metadata:
  name: kube-dns
  namespace: kube-system
  labels: {k8s-app: kube-dns, kubernetes.io/name: CoreDNS}
spec:
  clusterIP: $K8S_DNS_SERVICE_IP
  selector: {k8s-app: kube-dns}
  ports:
  - {name: dns, port: 53, protocol: UDP}
  - {name: dns-tcp, port: 53, protocol: TCP}
  - {name: metrics, port: 9153, protocol: TCP}
EOF
  _kubectl_admin -n kube-system wait --for=condition=Available deployment/coredns --timeout=180s >/dev/null \
    || k8s_die "CoreDNS did not become ready: $(_kubectl_admin -n kube-system get pods -l k8s-app=kube-dns -o wide 2>&1)"
}

# The chart's values this cluster sets (the chart's side of the contract):
#   image.repository, image.tag, image.pullPolicy   the agent image built here
#   apiServer.host, apiServer.port                  the API server's real address
#     (the agent must not reach it through the `kubernetes` VIP it serves)
#   mesh.serviceCIDR, mesh.podCIDR                  the cluster's ranges, both
#     families ("V4,V6"; helm's --set needs the comma escaped)
#   agent.instance                                  K8S_EBMESH_INSTANCE
install_ebmesh() {
  local chart="$1" ref="$2"
  k8s_say "installing ebmesh ($ref) with the chart at $chart into $K8S_EBMESH_NAMESPACE"
  _helm_admin upgrade --install "$K8S_EBMESH_RELEASE" "$chart" \
    --namespace "$K8S_EBMESH_NAMESPACE" --create-namespace \
    --set "image.repository=${ref%:*}" --set "image.tag=${ref##*:}" --set image.pullPolicy=Never \
    --set "apiServer.host=$K8S_HOST_IP" --set "apiServer.port=$K8S_APISERVER_PORT" \
    --set "mesh.serviceCIDR=${K8S_SERVICE_CIDRS//,/\\,}" --set "mesh.podCIDR=${K8S_POD_CIDRS//,/\\,}" \
    --set "agent.instance=$K8S_EBMESH_INSTANCE" \
    --wait --timeout 5m >&2 \
    || k8s_die "helm install of ebmesh failed: $(_kubectl_admin -n "$K8S_EBMESH_NAMESPACE" get pods -o wide 2>&1)"
  local ds
  for ds in $(_kubectl_admin -n "$K8S_EBMESH_NAMESPACE" get daemonsets -o name); do
    _kubectl_admin -n "$K8S_EBMESH_NAMESPACE" rollout status "$ds" --timeout=180s >/dev/null \
      || k8s_die "$ds did not become ready: $(_kubectl_admin -n "$K8S_EBMESH_NAMESPACE" get pods -o wide 2>&1)"
  done
}

# Gateway API's CRDs (standard channel: HTTPRoute and GRPCRoute among them),
# from the sigs.k8s.io/gateway-api module's own YAML at the pinned version.
install_gateway_api_crds() {
  local dir
  dir="$(cd "$EBMESH_CACHE" && GOFLAGS=-mod=mod GOWORK=off go mod download -json "sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION" | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p')"
  [ -d "$dir/config/crd/standard" ] || k8s_die "no config/crd/standard in sigs.k8s.io/gateway-api@$GATEWAY_API_VERSION ($dir)"
  k8s_say "installing the Gateway API CRDs ($GATEWAY_API_VERSION, standard channel)"
  _kubectl_admin apply --server-side --force-conflicts -f "$dir/config/crd/standard/" >/dev/null \
    || k8s_die "kubectl apply of the Gateway API CRDs failed"
  _kubectl_admin wait --for=condition=Established crd/httproutes.gateway.networking.k8s.io crd/grpcroutes.gateway.networking.k8s.io --timeout=60s >/dev/null \
    || k8s_die "the Gateway API CRDs did not become established"
}
