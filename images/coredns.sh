# The cluster DNS image: the CoreDNS binary built by
# scripts/k8s/build-tools.sh (static, CGO off), alone in the image.
image_coredns() {
  local bin="$COREDNS_BIN/coredns" key
  [ -x "$bin" ] || { echo "images: $bin is missing (scripts/k8s/build-tools.sh coredns builds it)" >&2; return 1; }
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(img_file_hash "$bin")")"
  IMG_REF="$K8S_COREDNS_IMAGE"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/coredns-$COREDNS_VERSION-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin
  img_add "$bin" /coredns
  img_config --entrypoint '["/coredns"]' --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/coredns-*.tar" "$IMG_ARCHIVE"
}
