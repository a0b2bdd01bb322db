# The pod sandbox's pause image: pause.c from k8s.io/kubernetes'
# build/pause/linux at the cluster's release, linked statically, alone in
# the image. Named as containerd's sandbox_image setting names it.
image_pause() {
  local mod src key
  mod="$(cd / && GOWORK=off go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  src="$mod/build/pause/linux/pause.c"
  [ -f "$src" ] || { echo "images: $src is missing" >&2; return 1; }
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(img_file_hash "$src")" "$PAUSE_VERSION")"
  IMG_REF="$K8S_PAUSE_IMAGE"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/pause-$PAUSE_VERSION-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin
  # As build/pause/Makefile compiles it (its VERSION define names the tag).
  gcc -Os -Wall -Werror -static -DVERSION="v$PAUSE_VERSION-ebmesh" -o "$IMG_WORK/pause" "$src"
  strip "$IMG_WORK/pause"
  img_add "$IMG_WORK/pause" /pause
  img_config --entrypoint '["/pause"]' --user 65535:65535
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/pause-*.tar" "$IMG_ARCHIVE"
}
