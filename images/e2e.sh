# The images Kubernetes' end-to-end tests run, built here instead of pulled
# (test/utils/image/manifest.go names them; scripts/conformance.sh maps the
# suite's registries to ebmesh.local with KUBE_TEST_REPO_LIST):
#   agnhost          agnhost built from the kubernetes module by
#                    scripts/k8s/build-e2e.sh, on the toolbox userland (dig,
#                    curl, nc, ip), laid out as its Dockerfile lays it out
#   jessie-dnsutils  a Debian userland with dig and getent (the DNS probes)
#   nginx            nginx serving on port 80 in the foreground
#   busybox          Debian's busybox-static with its applets linked
# The first three share the toolbox image as their base layer.
E2E_REGISTRY=ebmesh.local/e2e-test-images

# _e2e_toolbox_archive: the toolbox image's archive (built if missing).
_e2e_toolbox_archive() {
  image_toolbox || return 1
  E2E_BASE="$IMG_ARCHIVE"
}

# image_e2e_agnhost: ENTRYPOINT /agnhost, CMD pause, as upstream's image.
image_e2e_agnhost() {
  local bin="$K8S_E2E_BIN/agnhost" mod version stage key
  [ -x "$bin" ] || { echo "images: $bin is missing (scripts/k8s/build-e2e.sh agnhost builds it)" >&2; return 1; }
  _e2e_toolbox_archive || return 1
  mod="$(cd / && GOWORK=off go mod download -json "k8s.io/kubernetes@$K8S_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  version="$(cat "$mod/test/images/agnhost/VERSION")"
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$E2E_BASE")" "$(img_file_hash "$bin")" "$(img_file_hash "$COREDNS_BIN/coredns")")"
  IMG_REF="$E2E_REGISTRY/agnhost:$version"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/e2e-agnhost-$version-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  stage="$(mktemp -d "$K8S_IMAGE_CACHE/.agnhost-stage.XXXXXX")"
  mkdir -p "$stage/etc" "$stage/uploads"
  cp "$bin" "$stage/agnhost"
  ln -s agnhost "$stage/agnhost-2"   # the entrypoint-tester tests run it by this name
  # porter's TLS serving pair, where porter looks for it (the working dir).
  cp "$mod/test/images/agnhost/porter/localhost.crt" "$mod/test/images/agnhost/porter/localhost.key" "$stage/"
  # A CoreDNS binary at /coredns: the DNS tests start their own servers with it.
  cp "$COREDNS_BIN/coredns" "$stage/coredns"
  # The user and group the SupplementalGroups tests expect in the image.
  tar -xOf "$(img_debian_rootfs toolbox "${TOOLBOX_PACKAGES[@]}")" ./etc/passwd > "$stage/etc/passwd"
  tar -xOf "$(img_debian_rootfs toolbox "${TOOLBOX_PACKAGES[@]}")" ./etc/group > "$stage/etc/group"
  printf 'user-defined-in-image:x:1000:1000::/home/user-defined-in-image:/bin/sh\n' >> "$stage/etc/passwd"
  printf 'user-defined-in-image:x:1000:\ngroup-defined-in-image:x:50000:user-defined-in-image\n' >> "$stage/etc/group"
  chmod -R u=rwX,go=rX "$stage"; chmod 0777 "$stage/uploads"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf "$stage.tar" .
  img_begin_from "$E2E_BASE"
  img_add "$stage.tar" /
  rm -rf "$stage" "$stage.tar"
  img_config --entrypoint '["/agnhost"]' --cmd '["pause"]' --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/e2e-agnhost-*.tar" "$IMG_ARCHIVE"
}

# image_e2e_jessie_dnsutils: the DNS tests' second prober (dig, getent, sh).
image_e2e_jessie_dnsutils() {
  local key
  _e2e_toolbox_archive || return 1
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$E2E_BASE")")"
  IMG_REF="$E2E_REGISTRY/jessie-dnsutils:1.7"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/e2e-jessie-dnsutils-1.7-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin_from "$E2E_BASE"
  img_config --cmd '["sleep", "infinity"]' --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/e2e-jessie-dnsutils-*.tar" "$IMG_ARCHIVE"
}

# image_e2e_nginx: nginx on :80 in the foreground, under both tags the
# suite names (Nginx and NginxNew).
image_e2e_nginx() {
  local tag="$1" key
  _e2e_toolbox_archive || return 1
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$E2E_BASE")" "$tag")"
  IMG_REF="$E2E_REGISTRY/nginx:$tag"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/e2e-nginx-$tag-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin_from "$E2E_BASE"
  img_config --entrypoint '["nginx", "-g", "daemon off;"]' --cmd '[]' --port 80 --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/e2e-nginx-$tag-*.tar" "$IMG_ARCHIVE"
}
image_e2e_nginx_114() { image_e2e_nginx 1.14-4; }
image_e2e_nginx_115() { image_e2e_nginx 1.15-4; }

# image_e2e_busybox: the host's busybox-static (Debian) and a link per applet.
image_e2e_busybox() {
  local bb=/bin/busybox stage key a
  [ -x "$bb" ] && "$bb" --list-full >/dev/null 2>&1 || { echo "images: $bb is missing (apt-get install busybox-static)" >&2; return 1; }
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(img_file_hash "$bb")")"
  IMG_REF="$E2E_REGISTRY/busybox:1.37.0-1"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/e2e-busybox-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  stage="$(mktemp -d "$K8S_IMAGE_CACHE/.busybox-stage.XXXXXX")"
  mkdir -p "$stage/bin" "$stage/sbin" "$stage/usr/bin" "$stage/usr/sbin" "$stage/tmp" "$stage/etc"
  cp "$bb" "$stage/bin/busybox"
  for a in $("$bb" --list-full); do
    [ "$a" = bin/busybox ] || [ -e "$stage/$a" ] || ln -s /bin/busybox "$stage/$a"
  done
  chmod 1777 "$stage/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/home:/bin/false\n' > "$stage/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$stage/etc/group"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf "$stage.tar" .
  img_begin
  img_add "$stage.tar" /
  rm -rf "$stage" "$stage.tar"
  img_config --cmd '["sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/e2e-busybox-*.tar" "$IMG_ARCHIVE"
}

# The images the sig-network and NetworkPolicy tests use, recipe names.
E2E_IMAGES=(e2e_agnhost e2e_jessie_dnsutils e2e_nginx_114 e2e_nginx_115 e2e_busybox)
