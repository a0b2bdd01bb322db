# The host's side of the test cluster: Debian packages, the node's network
# (dummy device, unreachable routes), and the cleanup `down` does of
# everything the daemons made (containers, mounts, cgroups, links, iptables
# chains, files).

# Debian 12 packages: the container runtime (containerd 1.6.20, runc 1.1.5),
# CNI plugins (bridge, host-local, loopback), image tools (buildah,
# debootstrap, busybox-static; gcc and libc6-dev for the static pause
# binary), the iptables the kubelet writes its canary chains with, nftables
# and conntrack for kube-proxy's modes in the comparison benchmark.
K8S_PACKAGES=(containerd runc containernetworking-plugins buildah debootstrap busybox-static
  gcc libc6-dev iptables nftables conntrack iproute2 util-linux openssl curl)

host_install() {
  local missing=() p
  for p in "${K8S_PACKAGES[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  [ ${#missing[@]} -eq 0 ] && return 0
  k8s_say "installing ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

# Facts the cluster relies on; a machine without them fails here, by name.
host_check() {
  [ "$(id -u)" -eq 0 ] || k8s_die "the cluster needs root (containers, mounts, routes)"
  [ -f /sys/fs/cgroup/memory/memory.limit_in_bytes ] || [ -f /sys/fs/cgroup/cgroup.controllers ] \
    || k8s_die "no cgroup memory controller at /sys/fs/cgroup"
  [ -n "$(tail -n +2 /proc/swaps)" ] && k8s_die "swap is on; the kubelet runs with failSwapOn (turn swap off: swapoff -a)"
  [ -e /dev/kmsg ] || k8s_die "/dev/kmsg is missing (the kubelet's OOM watcher reads it)"
  [ -e /proc/sys/net/bridge/bridge-nf-call-iptables ] || k8s_die "br_netfilter is not loaded"
  [ -d /usr/lib/cni ] || k8s_die "the CNI plugins are missing from /usr/lib/cni"
  return 0
}

host_net_up() {
  # The node provides bpffs (the agent's pins outlive its container): as any
  # distribution's init does, mounted once on the host.
  mountpoint -q /sys/fs/bpf || { mkdir -p /sys/fs/bpf && mount -t bpf bpf /sys/fs/bpf; }
  ip addr replace "$K8S_HOST_IP/32" dev lo
  # nodad: the address serves at once (the kubelet checks its node IPs).
  ip -6 addr replace "$K8S_HOST_IP6/128" dev lo nodad
  # Service VIPs are translated at the socket by the mesh; a packet still
  # addressed to one dies here. The rest of the pod CIDR (beyond this node's
  # /24 and /64, which the bridge routes) likewise. Both families.
  local c
  for c in "$K8S_SERVICE_CIDR" "$K8S_POD_CIDR" "$K8S_SERVICE_CIDR6" "$K8S_POD_CIDR6"; do
    ip route replace unreachable "$c"
  done
}

host_net_down() {
  local l
  for l in $(ip -o link show master "$K8S_BRIDGE" 2>/dev/null | awk -F': ' '{print $2}' | cut -d@ -f1); do
    ip link del "$l" 2>/dev/null || true
  done
  ip link del "$K8S_BRIDGE" 2>/dev/null || true
  ip addr del "$K8S_HOST_IP/32" dev lo 2>/dev/null || true
  ip -6 addr del "$K8S_HOST_IP6/128" dev lo 2>/dev/null || true
  local c
  for c in "$K8S_SERVICE_CIDR" "$K8S_POD_CIDR" "$K8S_SERVICE_CIDR6" "$K8S_POD_CIDR6"; do
    ip route del unreachable "$c" 2>/dev/null || true
  done
}

# Every container of the runc state dir the cluster's containerd uses:
# killed and deleted, whether containerd still runs or not.
host_kill_containers() {
  local root="$K8S_RUN/runc/k8s.io" id
  [ -d "$root" ] || return 0
  for id in $(runc --root "$root" list -q 2>/dev/null); do
    runc --root "$root" kill --all "$id" KILL 2>/dev/null || true
  done
  sleep 0.5
  for id in $(runc --root "$root" list -q 2>/dev/null); do
    runc --root "$root" delete --force "$id" 2>/dev/null || true
  done
}

# containerd's shims outlive containerd by design; those of this cluster name
# its socket on their command line. Ended by PID.
host_kill_shims() {
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $K8S_CONTAINERD_SOCK" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  # The shims' sockets live in containerd's fixed socket dir; each is named
  # by a hash, so remove only those no process listens on any more.
  local s
  for s in /run/containerd/s/*; do
    [ -S "$s" ] || continue
    grep -q " ${s#unix://}\$" /proc/net/unix || rm -f "$s"
  done
  rmdir /run/containerd/s /run/containerd 2>/dev/null || true
}

# Every mount below the cluster's state dirs (kubelet volumes, container
# rootfs, sandbox shm, netns files), deepest first.
host_unmount() {
  local m i
  for i in 1 2 3; do
    local mounts=()
    while read -r m; do mounts+=("$m"); done < <(
      awk -v a="$K8S_STATE" -v b="$K8S_RUN" '$5 == a || index($5, a"/") == 1 || $5 == b || index($5, b"/") == 1 {print $5}' /proc/self/mountinfo | sort -r)
    [ ${#mounts[@]} -eq 0 ] && return 0
    for m in "${mounts[@]}"; do
      umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
    done
  done
}

# The kubelet's cgroup tree (kubepods, with the QoS levels, pods and
# containers below it) in every cgroup v1 hierarchy and in the unified one.
host_remove_cgroups() {
  local h left=0
  for h in /sys/fs/cgroup/*/kubepods /sys/fs/cgroup/kubepods; do
    [ -d "$h" ] || continue
    find "$h" -depth -type d -exec rmdir {} + 2>/dev/null || true
    [ -d "$h" ] && { k8s_say "could not remove $h (processes still in it?)"; left=1; }
  done
  return $left
}

# Chains the kubelet (KUBE-*) or CNI plugins (CNI-*) made, in every table of
# iptables and ip6tables: the rules jumping to them first, then the chains.
host_remove_chains() {
  local ipt table line chain
  for ipt in iptables ip6tables; do
    command -v "$ipt" >/dev/null || continue
    for table in filter nat mangle raw; do
      while read -r line; do
        eval "$ipt -w -t $table -D ${line#-A }" 2>/dev/null || true
      done < <($ipt -w -t "$table" -S 2>/dev/null | grep -E '^-A (INPUT|OUTPUT|FORWARD|PREROUTING|POSTROUTING) .*-j (KUBE|CNI)-')
      local chains=()
      while read -r chain; do chains+=("$chain"); done < <($ipt -w -t "$table" -S 2>/dev/null | awk '/^-N (KUBE|CNI)-/ {print $2}')
      for chain in "${chains[@]}"; do $ipt -w -t "$table" -F "$chain" 2>/dev/null || true; done
      for chain in "${chains[@]}"; do $ipt -w -t "$table" -X "$chain" 2>/dev/null || true; done
    done
  done
  # kube-proxy's nftables mode (the comparison benchmark) keeps its own tables.
  if command -v nft >/dev/null; then
    nft delete table ip kube-proxy 2>/dev/null || true
    nft delete table ip6 kube-proxy 2>/dev/null || true
  fi
}

# The few files the daemons write outside the state dirs, at paths they do
# not let us configure: the kubelet's device-plugin socket dir and its
# /var/log/containers links (into our podLogsDir), and libcni's result cache
# for our network and for the loopback of our sandboxes.
host_remove_outside_files() {
  rm -rf /var/lib/kubelet/device-plugins
  rmdir /var/lib/kubelet 2>/dev/null || true
  local l f id
  for l in /var/log/containers/*.log; do
    [ -L "$l" ] || continue
    case "$(readlink "$l")" in "$K8S_STATE/"*) rm -f "$l" ;; esac
  done
  rmdir /var/log/containers 2>/dev/null || true
  for f in /var/lib/cni/results/ebmesh-k8s-*; do
    [ -e "$f" ] || continue
    id="${f#/var/lib/cni/results/ebmesh-k8s-}"; id="${id%-*}"
    rm -f "$f" "/var/lib/cni/results/cni-loopback-$id-lo"
  done
  rmdir /var/lib/cni/results /var/lib/cni 2>/dev/null || true
}

# The kernel settings the kubelet rewrites at start (it wants overcommit,
# a reboot 10 s after a panic, a panic on every oops, more root keys): their
# values from before its first start are kept, and `down` puts them back.
K8S_KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

host_save_sysctls() {
  local f="$K8S_STATE/host-sysctls" k
  [ -f "$f" ] && return 0
  for k in "${K8S_KUBELET_SYSCTLS[@]}"; do
    printf '%s=%s\n' "$k" "$(sysctl -n "$k")"
  done > "$f.tmp"
  mv "$f.tmp" "$f"
}

host_restore_sysctls() {
  local f="$K8S_STATE/host-sysctls" kv
  [ -f "$f" ] || return 0
  while read -r kv; do
    sysctl -qw "$kv" || k8s_say "could not restore $kv"
  done < "$f"
}
