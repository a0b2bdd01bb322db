# The test cluster's certificates, as a real cluster has them: a cluster CA
# that signs the API server's serving certificate, every component's client
# certificate and the kubelet's serving certificate; a separate etcd CA
# (only the API server may talk to etcd); the front-proxy CA whose client
# the API server proxies to aggregated APIs as; the ServiceAccount token signing
# key; one kubeconfig per client. Made once per cluster (kept until `down`).

_pki_days=3650

# pki_ca NAME CN
pki_ca() {
  local name="$1" cn="$2"
  [ -f "$K8S_PKI/$name.crt" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$K8S_PKI/$name.key" 2>/dev/null
  openssl req -x509 -new -key "$K8S_PKI/$name.key" -days "$_pki_days" -subj "/CN=$cn" \
    -addext 'basicConstraints=critical,CA:TRUE' -addext 'keyUsage=critical,keyCertSign,cRLSign,digitalSignature' \
    -out "$K8S_PKI/$name.crt"
}

# pki_cert NAME CA SUBJECT USAGE [SANS]: USAGE is server, client or both;
# SANS as openssl writes them (DNS:x,IP:y).
pki_cert() {
  local name="$1" ca="$2" subj="$3" usage="$4" sans="${5:-}"
  [ -f "$K8S_PKI/$name.crt" ] && return 0
  local eku ext="$K8S_PKI/$name.ext"
  case "$usage" in
    server) eku=serverAuth ;;
    client) eku=clientAuth ;;
    both) eku=serverAuth,clientAuth ;;
  esac
  {
    echo 'basicConstraints=critical,CA:FALSE'
    echo 'keyUsage=critical,digitalSignature,keyEncipherment'
    echo "extendedKeyUsage=$eku"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } > "$ext"
  openssl ecparam -name prime256v1 -genkey -noout -out "$K8S_PKI/$name.key" 2>/dev/null
  openssl req -new -key "$K8S_PKI/$name.key" -subj "$subj" -out "$K8S_PKI/$name.csr"
  openssl x509 -req -in "$K8S_PKI/$name.csr" -CA "$K8S_PKI/$ca.crt" -CAkey "$K8S_PKI/$ca.key" \
    -CAcreateserial -days "$_pki_days" -extfile "$ext" -out "$K8S_PKI/$name.crt" 2>/dev/null
  rm -f "$K8S_PKI/$name.csr" "$ext"
}

# pki_kubeconfig NAME CERT: $K8S_PKI/NAME.kubeconfig for the client CERT,
# with everything embedded (it can be copied elsewhere as it is).
pki_kubeconfig() {
  local name="$1" cert="$2"
  [ -f "$K8S_PKI/$name.kubeconfig" ] && return 0
  cat > "$K8S_PKI/$name.kubeconfig.tmp" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: ebmesh-k8s
  cluster:
    server: $K8S_APISERVER_URL
    certificate-authority-data: $(base64 -w0 < "$K8S_PKI/ca.crt")
users:
- name: $name
  user:
    client-certificate-data: $(base64 -w0 < "$K8S_PKI/$cert.crt")
    client-key-data: $(base64 -w0 < "$K8S_PKI/$cert.key")
contexts:
- name: ebmesh-k8s
  context:
    cluster: ebmesh-k8s
    user: $name
current-context: ebmesh-k8s
EOF
  mv "$K8S_PKI/$name.kubeconfig.tmp" "$K8S_PKI/$name.kubeconfig"
}

pki_all() {
  mkdir -p "$K8S_PKI"
  chmod 700 "$K8S_PKI"
  pki_ca ca ebmesh-k8s-ca
  pki_ca etcd-ca ebmesh-k8s-etcd-ca
  pki_ca front-proxy-ca ebmesh-k8s-front-proxy-ca
  pki_cert front-proxy-client front-proxy-ca /CN=front-proxy-client client
  pki_cert etcd-server etcd-ca /CN=etcd both 'DNS:localhost,IP:127.0.0.1'
  pki_cert apiserver-etcd-client etcd-ca /CN=kube-apiserver-etcd-client client
  local d=$K8S_CLUSTER_DOMAIN
  pki_cert apiserver ca /CN=kube-apiserver server \
    "DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$d,DNS:localhost,IP:$K8S_KUBERNETES_SERVICE_IP,IP:$K8S_HOST_IP,IP:127.0.0.1"
  pki_cert apiserver-kubelet-client ca '/O=system:masters/CN=kube-apiserver-kubelet-client' client
  pki_cert admin ca '/O=system:masters/CN=ebmesh-k8s-admin' client
  pki_cert controller-manager ca /CN=system:kube-controller-manager client
  pki_cert scheduler ca /CN=system:kube-scheduler client
  pki_cert kube-proxy ca /CN=system:kube-proxy client
  pki_cert kubelet ca "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" client
  pki_cert kubelet-serving ca "/O=system:nodes/CN=system:node:$K8S_NODE_NAME" server \
    "DNS:$K8S_NODE_NAME,IP:$K8S_HOST_IP,IP:$K8S_HOST_IP6"
  if [ ! -f "$K8S_PKI/sa.key" ]; then
    openssl genrsa -out "$K8S_PKI/sa.key.tmp" 2048 2>/dev/null
    openssl rsa -in "$K8S_PKI/sa.key.tmp" -pubout -out "$K8S_PKI/sa.pub" 2>/dev/null
    mv "$K8S_PKI/sa.key.tmp" "$K8S_PKI/sa.key"
  fi
  pki_kubeconfig admin admin
  pki_kubeconfig controller-manager controller-manager
  pki_kubeconfig scheduler scheduler
  pki_kubeconfig kubelet kubelet
  pki_kubeconfig kube-proxy kube-proxy
}
