#!/usr/bin/env bash
# A real one-node Kubernetes cluster on this machine, built and run by the
# project (docs/kubernetes-lab.md): etcd, kube-apiserver,
# kube-controller-manager, kube-scheduler, containerd and the kubelet, CNI
# bridge networking, CoreDNS, and no kube-proxy: ebmesh, installed with its
# Helm chart, is the Service load balancer.
#
#   up                 install, build what is not cached, start, deploy; the
#                      last line printed is the KUBECONFIG path
#   down               remove everything `up` made
#   status             what runs
#   kubectl ARGS...    the built kubectl, with the admin kubeconfig
#   helm ARGS...       the built helm, with the admin kubeconfig
#   images             build the cluster's images and import them (if running)
#   agent-image [DIR]  build the ebmesh agent image from checkout DIR (default:
#                      this one), import it if the cluster runs; prints its name
#   smoke              check a running cluster end to end (exit 1 on failure)
#   env                shell lines with the cluster's facts (KUBECONFIG, ...)
#   service-proxy ebmesh|iptables|nftables
#                      which service proxy serves the cluster: ebmesh (its
#                      chart, as `up` installs it), or kube-proxy in that mode
#                      (ebmesh uninstalled and its data path removed) - for
#                      the comparison benchmark (ebmesh bench k8s-lb)
set -euo pipefail
K8S_REPO="$(cd "$(dirname "$0")/.." && pwd)"
. "$K8S_REPO/scripts/k8s/versions.sh"
. "$K8S_REPO/scripts/k8s/config.sh"
. "$K8S_REPO/scripts/k8s/lib.sh"
. "$K8S_REPO/scripts/k8s/pki.sh"
. "$K8S_REPO/scripts/k8s/host.sh"
. "$K8S_REPO/scripts/k8s/daemons.sh"
. "$K8S_REPO/scripts/k8s/addons.sh"
. "$K8S_REPO/scripts/k8s/smoke.sh"
. "$K8S_REPO/images/lib.sh"
. "$K8S_REPO/images/pause.sh"
. "$K8S_REPO/images/toolbox.sh"
. "$K8S_REPO/images/coredns.sh"
. "$K8S_REPO/images/ebmesh.sh"

# EBMESH_K8S_CHART: another chart dir to install instead (a chart under test).
K8S_CHART="${EBMESH_K8S_CHART:-$K8S_REPO/deploy/helm/ebmesh}"
K8S_DAEMONS=(etcd kube-apiserver kube-controller-manager kube-scheduler containerd kubelet)

# One `up`/`down`/`images` at a time on this machine.
_lock() {
  mkdir -p "$EBMESH_CACHE"
  exec 8>"$EBMESH_CACHE/k8s-lab.lock"
  flock -w 600 8 || k8s_die "another k8s-lab.sh up/down has held the lock for 10 minutes"
}

_cluster_running() { k8s_pid kube-apiserver >/dev/null && k8s_pid containerd >/dev/null; }

# The cluster's own images (not the agent's): built if not cached, imported
# if containerd runs.
_cluster_images() {
  local r
  for r in pause toolbox coredns; do
    "image_$r" || { img_cleanup; k8s_die "building the $r image failed"; }
    if k8s_pid containerd >/dev/null; then k8s_import "$IMG_REF" "$IMG_ARCHIVE"; fi
  done
}

_builds() {
  local t0=$SECONDS
  bash "$K8S_REPO/scripts/k8s/build-kubernetes.sh"
  bash "$K8S_REPO/scripts/k8s/build-tools.sh"
  [ $((SECONDS - t0)) -gt 5 ] && k8s_say "builds took $((SECONDS - t0)) s"
  return 0
}

cmd_up() {
  host_check
  _lock
  local t0=$SECONDS
  host_install
  _builds
  mkdir -p "$K8S_STATE" "$K8S_RUN"
  pki_all
  host_net_up
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  _cluster_images
  start_containerd
  _cluster_images
  host_save_sysctls
  start_kubelet
  wait_node_ready
  k8s_say "node $K8S_NODE_NAME is Ready ($((SECONDS - t0)) s)"
  deploy_coredns
  install_gateway_api_crds
  if [ -f "$K8S_CHART/Chart.yaml" ]; then
    cmd_agent_image "$K8S_REPO" >/dev/null
    install_ebmesh "$K8S_CHART" "$K8S_AGENT_IMAGE"
  else
    k8s_say "no Helm chart at ${K8S_CHART#"$K8S_REPO"/}: the cluster runs without ebmesh, so no Service VIP answers yet"
  fi
  k8s_say "up in $((SECONDS - t0)) s; kubectl: bash scripts/k8s-lab.sh kubectl ..."
  printf '%s\n' "$K8S_ADMIN_KUBECONFIG"
}

cmd_down() {
  [ "$(id -u)" -eq 0 ] || k8s_die "down needs root"
  _lock
  _kube_proxy_off
  k8s_stop kubelet
  # Containers first (through runc's state, whether containerd still runs or
  # not), then containerd and the shims it left.
  host_kill_containers
  k8s_stop containerd
  host_kill_shims
  # The agent's data path outlives its container by design (pins, the node
  # proxy, routes): remove what the instance made, by its names.
  if [ -f "$K8S_REPO/dist/src/cli/main.js" ]; then
    "$K8S_REPO/bin/ebmesh" --instance "$K8S_EBMESH_INSTANCE" down >/dev/null 2>&1 || k8s_say "ebmesh --instance $K8S_EBMESH_INSTANCE down failed"
  fi
  k8s_stop kube-scheduler
  k8s_stop kube-controller-manager
  k8s_stop kube-apiserver
  k8s_stop etcd
  host_unmount
  local cg_ok=1
  host_remove_cgroups || cg_ok=0
  host_net_down
  host_remove_chains
  host_remove_outside_files
  host_restore_sysctls
  rm -rf "$K8S_STATE" "$K8S_RUN"
  [ -e "$K8S_STATE" ] && k8s_say "$K8S_STATE could not be removed entirely (a mount left?)"
  [ "$cg_ok" = 1 ] || k8s_die "down finished, but cgroups remain (see above)"
  k8s_say "the cluster is down; builds and images stay cached in $EBMESH_CACHE"
}

cmd_status() {
  local d pid any=0
  for d in "${K8S_DAEMONS[@]}"; do
    if pid="$(k8s_pid "$d")"; then
      printf '%-24s running  pid %s  log %s\n' "$d" "$pid" "$K8S_LOGS/$d.log"; any=1
    else
      printf '%-24s stopped\n' "$d"
    fi
  done
  [ "$any" = 1 ] || return 0
  if k8s_pid kube-apiserver >/dev/null; then
    echo
    _kubectl_admin get nodes -o wide 2>&1 || true
    echo
    _kubectl_admin get pods -A -o wide 2>&1 || true
  fi
  printf '\nKUBECONFIG=%s\n' "$K8S_ADMIN_KUBECONFIG"
}

cmd_images() {
  host_check
  _lock
  bash "$K8S_REPO/scripts/k8s/build-tools.sh" coredns
  _cluster_images
}

# Builds (and imports, if containerd runs) the agent image; prints its name
# and sets K8S_AGENT_IMAGE.
cmd_agent_image() {
  local dir="${1:-$K8S_REPO}"
  image_ebmesh "$dir" || { img_cleanup; k8s_die "building the ebmesh agent image from $dir failed"; }
  if k8s_pid containerd >/dev/null; then k8s_import "$IMG_REF" "$IMG_ARCHIVE"; fi
  K8S_AGENT_IMAGE="$IMG_REF"
  printf '%s\n' "$IMG_REF"
}

# Whether every binary the cluster runs is built (then `up` needs no Go).
_builds_cached() {
  local b
  for b in "$K8S_BIN"/{kube-apiserver,kube-controller-manager,kube-scheduler,kubelet,kubectl,kube-proxy} \
    "$ETCD_BIN/etcd" "$HELM_BIN/helm" "$COREDNS_BIN/coredns"; do
    [ -x "$b" ] || return 1
  done
}

cmd_env() {
  local cached=no
  _builds_cached && cached=yes
  cat <<EOF
export KUBECONFIG=$K8S_ADMIN_KUBECONFIG
K8S_APISERVER_HOST=$K8S_HOST_IP
K8S_APISERVER_PORT=$K8S_APISERVER_PORT
K8S_NODE_NAME=$K8S_NODE_NAME
K8S_POD_CIDR=$K8S_POD_CIDR
K8S_SERVICE_CIDR=$K8S_SERVICE_CIDR
K8S_POD_CIDR6=$K8S_POD_CIDR6
K8S_SERVICE_CIDR6=$K8S_SERVICE_CIDR6
K8S_APISERVER_HOST6=$K8S_HOST_IP6
K8S_DNS_SERVICE_IP=$K8S_DNS_SERVICE_IP
K8S_CLUSTER_DOMAIN=$K8S_CLUSTER_DOMAIN
K8S_TOOLBOX_IMAGE=$K8S_TOOLBOX_IMAGE
K8S_EBMESH_INSTANCE=$K8S_EBMESH_INSTANCE
K8S_KUBECTL=$K8S_BIN/kubectl
K8S_HELM=$HELM_BIN/helm
K8S_BUILDS_CACHED=$cached
EOF
}

# kube-proxy off: the daemon stopped, and its rules and tables gone (its own --cleanup).
_kube_proxy_off() {
  k8s_stop kube-proxy
  "$K8S_BIN/kube-proxy" --cleanup >/dev/null 2>&1 || true
}

cmd_service_proxy() {
  local mode="${1:?service-proxy ebmesh|iptables|nftables}"
  _cluster_running || k8s_die "no cluster (bash scripts/k8s-lab.sh up)"
  case "$mode" in
    ebmesh)
      _kube_proxy_off
      cmd_agent_image "$K8S_REPO" >/dev/null
      install_ebmesh "$K8S_CHART" "$K8S_AGENT_IMAGE"
      ;;
    iptables|nftables)
      if _helm_admin -n "$K8S_EBMESH_NAMESPACE" status "$K8S_EBMESH_RELEASE" >/dev/null 2>&1; then
        _helm_admin -n "$K8S_EBMESH_NAMESPACE" uninstall "$K8S_EBMESH_RELEASE" --wait --timeout 2m >&2
      fi
      # The agent's data path outlives it by design: take it down by name.
      "$K8S_REPO/bin/ebmesh" --instance "$K8S_EBMESH_INSTANCE" down >/dev/null
      # The host keeps its safety routes for the ranges (ebmesh's down removed its own).
      host_net_up
      _kube_proxy_off
      mkdir -p "$K8S_ETC"
      cat > "$K8S_ETC/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
mode: $mode
clientConnection: {kubeconfig: $K8S_PKI/kube-proxy.kubeconfig}
hostnameOverride: $K8S_NODE_NAME
clusterCIDR: $K8S_POD_CIDRS
bindAddress: $K8S_HOST_IP
healthzBindAddress: 127.0.0.1:17256
metricsBindAddress: 127.0.0.1:17249
conntrack: {maxPerCore: 0}
EOF
      k8s_say "starting kube-proxy $K8S_VERSION in $mode mode"
      k8s_start kube-proxy "$K8S_BIN/kube-proxy" --config "$K8S_ETC/kube-proxy.yaml"
      ;;
    *) k8s_die "service-proxy: ebmesh, iptables or nftables, not '$mode'" ;;
  esac
}

cmd="${1:-}"
[ $# -gt 0 ] && shift
case "$cmd" in
  up) cmd_up ;;
  down) cmd_down ;;
  status) cmd_status ;;
  kubectl) [ -f "$K8S_ADMIN_KUBECONFIG" ] || k8s_die "no cluster (bash scripts/k8s-lab.sh up)"; exec "$K8S_BIN/kubectl" --kubeconfig "$K8S_ADMIN_KUBECONFIG" "$@" ;;
  helm) [ -f "$K8S_ADMIN_KUBECONFIG" ] || k8s_die "no cluster (bash scripts/k8s-lab.sh up)"; exec "$HELM_BIN/helm" --kubeconfig "$K8S_ADMIN_KUBECONFIG" "$@" ;;
  images) cmd_images ;;
  agent-image) host_check; _lock; cmd_agent_image "$@" ;;
  smoke) cmd_smoke ;;
  env) cmd_env ;;
  service-proxy) host_check; _lock; cmd_service_proxy "$@" ;;
  *) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//' >&2; exit 2 ;;
esac
