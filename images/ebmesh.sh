# The ebmesh agent image, from a repository checkout that is built
# (`npm ci && npm run build`): a Debian userland with libbpf1 and iproute2,
# the host's node binary, and the checkout's bin/, dist/, bpf/build/, the
# native relay (native/relay/build/relay.node: the node proxy's byte path),
# package.json and production node_modules under /opt/ebmesh. The tag is a
# hash of that content, so a changed agent gets a new tag (what
# `helm upgrade` needs to roll the DaemonSet) and an unchanged one the same.
EBMESH_BASE_PACKAGES=(libbpf1 iproute2)
# Agent images kept in the cache (newest first); older ones are removed.
EBMESH_IMAGES_KEPT=3

# image_ebmesh CHECKOUT
image_ebmesh() {
  local co="${1:?image_ebmesh: the repository checkout to build from}"
  co="$(cd "$co" && pwd)" || return 1
  local p
  for p in bin/ebmesh package.json package-lock.json node_modules dist/src bpf/build native/relay/build/relay.node; do
    [ -e "$co/$p" ] || { echo "images: $co/$p is missing: build the checkout first (npm ci && npm run build)" >&2; return 1; }
  done
  local base node stage key tag
  base="$(img_debian_rootfs ebmesh-base "${EBMESH_BASE_PACKAGES[@]}")" || return 1
  node="$(readlink -f "$(command -v node)")" || { echo "images: node is not installed" >&2; return 1; }
  mkdir -p "$K8S_IMAGE_CACHE"
  stage="$(mktemp -d "$K8S_IMAGE_CACHE/.ebmesh-stage.XXXXXX")"
  mkdir -p "$stage/opt/ebmesh/bpf" "$stage/opt/ebmesh/native/relay/build" "$stage/usr/local/bin"
  cp -a "$co/bin" "$co/dist" "$co/package.json" "$co/package-lock.json" "$co/node_modules" "$stage/opt/ebmesh/"
  cp -a "$co/bpf/build" "$stage/opt/ebmesh/bpf/build"
  cp "$co/native/relay/build/relay.node" "$stage/opt/ebmesh/native/relay/build/"
  cp "$node" "$stage/usr/local/bin/node"
  # Production dependencies only, from the lock file, without the network.
  if ! (cd "$stage/opt/ebmesh" && npm prune --omit=dev --offline --ignore-scripts --no-audit --no-fund --loglevel=error >/dev/null); then
    rm -rf "$stage"; echo "images: npm prune --omit=dev failed in the staged checkout" >&2; return 1
  fi
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf "$stage.tar" .
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$base")" "$(img_file_hash "$stage.tar")")"
  tag="${key:0:12}"
  IMG_REF="$K8S_AGENT_REPOSITORY:$tag"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/ebmesh-$tag.tar"
  if [ ! -f "$IMG_ARCHIVE" ]; then
    echo "images: building $IMG_REF from $co" >&2
    img_begin
    img_add "$base" /
    img_add "$stage.tar" /
    img_config --env PATH=/opt/ebmesh/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
      --entrypoint '["/opt/ebmesh/bin/ebmesh"]' --workingdir /opt/ebmesh
    img_finish "$IMG_REF" "$IMG_ARCHIVE"
  fi
  rm -rf "$stage" "$stage.tar"
  touch "$IMG_ARCHIVE"
  # shellcheck disable=SC2012
  ls -1t "$K8S_IMAGE_CACHE"/ebmesh-*.tar 2>/dev/null | tail -n +$((EBMESH_IMAGES_KEPT + 1)) | xargs -r rm -f
}
