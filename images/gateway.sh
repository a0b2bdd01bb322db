# The images Gateway API's conformance suite runs, built here from source
# (scripts/k8s/build-gateway.sh) and named exactly as the suite's manifests
# name them (conformance/base and conformance/mesh of the gateway-api
# module): the suite has no option to rename them, and a present image with
# a tag is never pulled.
#   echo-advanced  the mesh profile's echo app: Istio's echo server and client
#                  (istio.io/istio pkg/test/echo/cmd), on the toolbox userland,
#                  laid out as Istio's Dockerfile.app lays it out
#   echo-basic     the gateway profiles' backend, alone in its image
GW_ECHO_TAG=v20240412-v1.0.0-394-g40c666fd
GW_ECHO_REGISTRY=gcr.io/k8s-staging-gateway-api

image_gw_echo_advanced() {
  local mod stage key b
  for b in server client; do
    [ -x "$ISTIO_ECHO_BIN/$b" ] || { echo "images: $ISTIO_ECHO_BIN/$b is missing (scripts/k8s/build-gateway.sh builds it)" >&2; return 1; }
  done
  image_toolbox || return 1
  local base="$IMG_ARCHIVE"
  mod="$(cd / && GOWORK=off go mod download -json "istio.io/istio@$ISTIO_ECHO_VERSION" | sed -n 's/.*"Dir": "\(.*\)",*/\1/p')"
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(basename "$base")" "$(img_file_hash "$ISTIO_ECHO_BIN/server")" "$(img_file_hash "$ISTIO_ECHO_BIN/client")")"
  IMG_REF="$GW_ECHO_REGISTRY/echo-advanced:$GW_ECHO_TAG"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/gw-echo-advanced-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF (Istio's echo app at $ISTIO_ECHO_VERSION)" >&2
  stage="$(mktemp -d "$K8S_IMAGE_CACHE/.echo-stage.XXXXXX")"
  mkdir -p "$stage/usr/local/bin"
  cp "$ISTIO_ECHO_BIN/server" "$ISTIO_ECHO_BIN/client" "$stage/usr/local/bin/"
  # The serving pair the suite's --tls port uses (Istio's test certificates).
  cp "$mod/tests/testdata/certs/dns/cert-chain.pem" "$stage/cert.crt"
  cp "$mod/tests/testdata/certs/dns/key.pem" "$stage/cert.key"
  chmod -R u=rwX,go=rX "$stage"
  tar --sort=name --mtime=@0 --owner=0 --group=0 --numeric-owner -C "$stage" -cf "$stage.tar" .
  img_begin_from "$base"
  img_add "$stage.tar" /
  rm -rf "$stage" "$stage.tar"
  img_config --entrypoint '["/usr/local/bin/server"]' --cmd '[]' --user 1338 --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/gw-echo-advanced-*.tar" "$IMG_ARCHIVE"
}

image_gw_echo_basic() {
  local bin="$GATEWAY_CONFORMANCE_BIN/echo-basic" key
  [ -x "$bin" ] || { echo "images: $bin is missing (scripts/k8s/build-gateway.sh builds it)" >&2; return 1; }
  key="$(img_key "$(cat "${BASH_SOURCE[0]}")" "$(img_file_hash "$bin")")"
  IMG_REF="$GW_ECHO_REGISTRY/echo-basic:$GW_ECHO_TAG"
  IMG_ARCHIVE="$K8S_IMAGE_CACHE/gw-echo-basic-$key.tar"
  [ -f "$IMG_ARCHIVE" ] && return 0
  echo "images: building $IMG_REF" >&2
  img_begin
  img_add "$bin" /echo-basic
  img_config --entrypoint '["/echo-basic"]' --user 65532:65532 --workingdir /
  img_finish "$IMG_REF" "$IMG_ARCHIVE"
  img_prune "$K8S_IMAGE_CACHE/gw-echo-basic-*.tar" "$IMG_ARCHIVE"
}

GW_IMAGES=(gw_echo_advanced gw_echo_basic)
