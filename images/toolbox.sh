# ebmesh.local/toolbox:1 - a Debian userland any test or user can run as a
# pod: nginx (server), curl and python3 (clients, scripts), iproute2, and a
# few network tools (ping, nc, dig) for checking what a pod sees. Runs
# `sleep infinity` unless a pod says otherwise.
TOOLBOX_PACKAGES=(nginx-light curl python3 iproute2 procps iputils-ping netcat-openbsd bind9-dnsutils)

image_toolbox() {
  local rootfs key
  rootfs="$(img_debian_rootfs toolbox "${TOOLBOX_PACKAGES[@]}")" || return 1
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$rootfs")")"
  IMG_REF="$K8S_TOOLBOX_IMAGE"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/toolbox-1-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin
  img_add "$rootfs" /
  img_config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --cmd '["sleep", "infinity"]' --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/toolbox-1-*.tar" "$IMG_ARCHIVE"
}
