# Building container images without a registry or a daemon: buildah with
# vfs storage in a throwaway directory, images written out as docker-archive
# files, cached under $K8S_IMAGE_CACHE by a hash of what made them (the
# recipe's text and its inputs), so an unchanged recipe builds nothing.
#
# A recipe (images/NAME.sh) defines image_NAME, which sets IMG_REF (the name
# manifests use) and IMG_ARCHIVE (the cached archive), building it if needed.

IMG_LIB_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
# Debian's mirror for the images' userland, and the release the host runs.
K8S_DEBIAN_MIRROR="${K8S_DEBIAN_MIRROR:-http://deb.debian.org/debian}"
K8S_DEBIAN_SUITE="${K8S_DEBIAN_SUITE:-bookworm}"

# img_key STRING...: a short content hash of the strings (a recipe passes
# its own text and its inputs' hashes), so editing a helper rebuilds nothing.
img_key() {
  printf '%s\n' "$@" | sha256sum | cut -c1-16
}

img_file_hash() { sha256sum "$1" | cut -c1-64; }

_img_buildah() { buildah --root "$IMG_WORK/storage" --runroot "$IMG_WORK/run" --storage-driver vfs "$@"; }

# img_begin: a new image from scratch in a fresh work dir; sets IMG_WORK and
# IMG_CTR (the working container).
img_begin() {
  mkdir -p "$K8S_IMAGE_CACHE"
  IMG_WORK="$(mktemp -d "$K8S_IMAGE_CACHE/.work.XXXXXX")"
  # buildah would make /etc/cni/net.d for its own networks; it gets a dir
  # of the throwaway work dir instead (the images run no build steps).
  IMG_CTR="$(_img_buildah from --cni-config-dir "$IMG_WORK/cni" --cni-plugin-path /usr/lib/cni scratch)"
}

# img_begin_from ARCHIVE: like img_begin, on top of the image in a cached
# docker-archive, so images that share a base share its layer (containerd
# stores that layer once).
img_begin_from() {
  mkdir -p "$K8S_IMAGE_CACHE"
  IMG_WORK="$(mktemp -d "$K8S_IMAGE_CACHE/.work.XXXXXX")"
  IMG_CTR="$(_img_buildah from --cni-config-dir "$IMG_WORK/cni" --cni-plugin-path /usr/lib/cni "docker-archive:$1")"
}

# img_add SRC DEST: a file, a directory's contents, or a tar archive
# (unpacked) into the image.
img_add() { _img_buildah add "$IMG_CTR" "$1" "$2" >/dev/null; }

img_config() { _img_buildah config "$@" "$IMG_CTR"; }

# img_finish REF ARCHIVE: commits the image as REF and writes it to ARCHIVE.
img_finish() {
  local ref="$1" archive="$2"
  _img_buildah commit --quiet "$IMG_CTR" "$ref" >/dev/null
  rm -f "$archive.tmp"
  _img_buildah push --quiet "$ref" "docker-archive:$archive.tmp:$ref" >/dev/null
  mv "$archive.tmp" "$archive"
  img_cleanup
}

# img_prune PATTERN KEEP: removes the cached files matching PATTERN (a glob
# in the cache) other than KEEP: what an older recipe or input made.
img_prune() {
  local f
  for f in $1; do
    [ -f "$f" ] && [ "$f" != "$2" ] && rm -f "$f"
  done
  return 0
}

img_cleanup() {
  [ -n "${IMG_WORK:-}" ] || return 0
  _img_buildah rm --all >/dev/null 2>&1 || true
  rm -rf "$IMG_WORK"
  IMG_WORK=
}

# How img_debian_rootfs makes a root filesystem beyond debootstrap itself
# (what it removes): part of each rootfs' cache key. Bump it when that changes.
IMG_ROOTFS_RECIPE="minbase; no apt caches, /dev or log files; format 2"

# img_debian_rootfs NAME PACKAGE...: a tar of a minimal Debian userland
# (debootstrap --variant=minbase) with PACKAGES, cached by a hash of the
# suite, the package list and IMG_ROOTFS_RECIPE; prints its path.
img_debian_rootfs() {
  local name="$1"; shift
  local key tar dir
  key="$(img_key "$IMG_ROOTFS_RECIPE" "$K8S_DEBIAN_SUITE" "$@")"
  tar="$K8S_IMAGE_CACHE/rootfs/$name-$key.tar"
  if [ ! -f "$tar" ]; then
    mkdir -p "$K8S_IMAGE_CACHE/rootfs"
    dir="$(mktemp -d "$K8S_IMAGE_CACHE/rootfs/.debootstrap.XXXXXX")"
    echo "images: debootstrap $K8S_DEBIAN_SUITE ($*) for $name" >&2
    local include; include="$(IFS=,; echo "$*")"
    # debootstrap fakes start-stop-daemon while it installs, so no package's
    # service starts on the host.
    if ! debootstrap --variant=minbase --include="$include" "$K8S_DEBIAN_SUITE" "$dir" "$K8S_DEBIAN_MIRROR" \
        > "$dir.log" 2>&1; then
      _img_unmount_under "$dir"
      echo "images: debootstrap failed; its log: $dir.log" >&2
      tail -n 20 "$dir.log" >&2
      rm -rf "$dir"
      return 1
    fi
    _img_unmount_under "$dir"
    # No package caches, no device nodes (the runtime makes /dev), no install
    # logs (but the log dirs packages made stay: nginx needs /var/log/nginx).
    rm -rf "$dir"/var/cache/apt/archives/*.deb "$dir"/var/lib/apt/lists/* "$dir"/dev/*
    find "$dir/var/log" -type f -delete
    tar --numeric-owner --xattrs -C "$dir" -cf "$tar.tmp" .
    mv "$tar.tmp" "$tar"
    rm -rf "$dir" "$dir.log"
    img_prune "$K8S_IMAGE_CACHE/rootfs/$name-*.tar" "$tar"
  fi
  printf '%s\n' "$tar"
}

_img_unmount_under() {
  local m
  awk -v d="$1" 'index($5, d"/") == 1 {print $5}' /proc/self/mountinfo | sort -r | while read -r m; do
    umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true
  done
}
