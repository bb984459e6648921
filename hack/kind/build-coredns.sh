#!/usr/bin/env bash
# build-coredns.sh builds CoreDNS (the cluster's DNS) from the Go module proxy
# into the version-keyed cache. Pinned: an older module zip once hung here.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
go_install_cached coredns "$COREDNS_VERSION" "$COREDNS_BIN" "github.com/coredns/coredns@$COREDNS_VERSION" 5
