#!/usr/bin/env bash
# images.sh builds the cluster's own images (pause, CoreDNS, the echo test app)
# as static binaries on an empty base and imports them into the cluster's
# containerd. There is no registry: pods use imagePullPolicy IfNotPresent.
#
#   images.sh [pause|coredns|echo|import=FILE]...   (default: pause coredns echo)
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

out=$CACHE_DIR/images
mkdir -p "$out"
imagebuild() { (cd "$ROOT_DIR" && go run ./hack/kind/imagebuild "$@"); }
gobuild() { (cd "$ROOT_DIR" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w ${LDFLAGS:-}" -o "$@"); }

import() {
  wait_for containerd 30 ctr version
  ctr images import "$1" >/dev/null
  log "imported $2"
}

for what in "${@:-pause coredns echo}"; do
  for w in $what; do
    case $w in
      pause)
        gobuild "$out/pause" ./hack/kind/pause
        imagebuild -tag "$PAUSE_IMAGE" -o "$out/pause.tar" -entrypoint /pause "$out/pause=/pause"
        import "$out/pause.tar" "$PAUSE_IMAGE" ;;
      coredns)
        imagebuild -tag "$COREDNS_IMAGE" -o "$out/coredns.tar" -entrypoint /coredns "$COREDNS_BIN=/coredns"
        import "$out/coredns.tar" "$COREDNS_IMAGE" ;;
      echo)
        gobuild "$out/echo" ./hack/kind/apps/echo
        # The intruder of the security tests rides in the same image.
        gobuild "$out/probe" ./hack/kind/apps/probe
        imagebuild -tag "$ECHO_IMAGE" -o "$out/echo.tar" -entrypoint "/echo serve" "$out/echo=/echo" "$out/probe=/probe"
        import "$out/echo.tar" "$ECHO_IMAGE" ;;
      import=*)
        # An image tarball built elsewhere (make image: the project's own).
        import "${w#import=}" "${w#import=}" ;;
      *) die "unknown image $w" ;;
    esac
  done
done
