#!/usr/bin/env bash
# images.sh builds the cluster's own images (pause, CoreDNS, the echo test app)
# as static binaries on an empty base and pushes them to the cluster's
# registry, from which the kubelet pulls them as it would on any cluster.
#
#   images.sh [pause|coredns|echo]...   (default: pause coredns echo)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

out=$CACHE_DIR/images
mkdir -p "$out"
# push REF SRC=DST... with the entrypoint in $entry.
push() { (cd "$ROOT_DIR" && go run ./hack/kind/imagebuild -push -ca "$STATE/pki/ca.crt" -tag "$@") >/dev/null; log "pushed $1"; }
gobuild() { (cd "$ROOT_DIR" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${LDFLAGS:-}" -o "$@"); }

for what in "${@:-pause coredns echo}"; do
  for w in $what; do
    case $w in
      pause)
        gobuild "$out/pause" ./hack/kind/pause
        push "$PAUSE_IMAGE" -entrypoint /pause "$out/pause=/pause" ;;
      coredns)
        push "$COREDNS_IMAGE" -entrypoint /coredns "$COREDNS_BIN=/coredns" ;;
      echo)
        gobuild "$out/echo" ./hack/kind/apps/echo
        # The intruder of the security tests (hack/kind/apps/probe) is built
        # by the tests from their checkout, and reaches pods by hostPath.
        push "$ECHO_IMAGE" -entrypoint "/echo serve" "$out/echo=/echo" ;;
      *) die "unknown image $w" ;;
    esac
  done
done
