#!/usr/bin/env bash
# Installs what ebmesh needs on a Debian machine (as root), then builds it.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."

# Debian packages: the BPF toolchain, the lab's network tools, and the real
# clients and servers the demo, tests and benchmarks use.
PKGS=(clang llvm libbpf-dev libbpf1 bpftool linux-libc-dev make gcc iproute2 util-linux procps python3
      libnghttp2-dev  # the node proxy's native relay (native/relay): nghttp2's header; OpenSSL's and Node-API's come with Node
      curl nginx-light nghttp2-client iperf3 iptables nftables
      etcd-server etcd-client tcpdump
      python3-prometheus-client
      sockperf  # bench shortcut: ping-pong round trips
      haproxy wrk  # bench sidecars (the sidecar model's proxy) and loopback (the reference client)
      python3-grpcio default-jdk-headless  # clients that dial IPv4 Services over AF_INET6 sockets (v4-mapped)
      chromium)  # the web UI's browser tests (driven by playwright-core, which downloads no browser)
missing=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "ebmesh needs these Debian packages: ${missing[*]} (run this as root)" >&2
    exit 1
  fi
  echo "• installing ${missing[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  # Debian starts nginx and haproxy on install; the lab and the benchmarks run their own, and nothing else should listen.
  for daemon in nginx haproxy; do
    if command -v service >/dev/null && pgrep -x "$daemon" >/dev/null 2>&1; then service "$daemon" stop >/dev/null 2>&1 || true; fi
  done
fi

if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  echo "• npm ci" >&2
  npm ci --no-audit --no-fund --loglevel=error
fi
echo "• building (BPF objects and TypeScript)" >&2
npm run --silent build
