#!/usr/bin/env bash
# build-registry.sh builds the CNCF Distribution registry (the cluster's image
# registry) from the Go module proxy into the version-keyed cache.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"
go_install_cached "the distribution registry" "$REGISTRY_VERSION" "$REGISTRY_BIN" \
  "github.com/distribution/distribution/v3/cmd/registry@$REGISTRY_VERSION" 2
