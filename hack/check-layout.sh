#!/usr/bin/env bash
# check-layout.sh: the programs' packages depend one way (make lint).
# The laptop's packages (CLI, daemon, helper, manager client) import neither
# in-cluster program, the two in-cluster programs import neither each other
# nor the laptop's packages; only cmd/kubectl-tele, where the hidden
# commands are routed, imports both sides. See docs/how-it-works.md, "Package map".
set -euo pipefail
mod=github.com/kubectl-tele/kubectl-tele
fail=0
forbid() { # forbid PKG PATTERN WHY
	local bad
	bad=$(go list -deps "$mod/$1" | grep -E "^$mod/($2)(/|\$)" || true)
	if [ -n "$bad" ]; then
		echo "layout: $1 must not import $(echo "$bad" | tr '\n' ' ')($3)"
		fail=1
	fi
}
laptop="pkg/plugin pkg/session pkg/managerclient pkg/net/device pkg/net/dns pkg/net/helper pkg/net/resolver pkg/net/stack pkg/net/namecheck"
for p in $laptop; do forbid "$p" 'pkg/manager|pkg/agent' "laptop side"; done
forbid pkg/manager 'pkg/agent|pkg/plugin|pkg/session|pkg/net|pkg/managerclient' "in-cluster manager"
forbid pkg/agent 'pkg/manager|pkg/plugin|pkg/session|pkg/net|pkg/managerclient' "in-cluster agent"
for p in pkg/teleproto pkg/match pkg/objects pkg/tunnel; do
	forbid "$p" 'pkg/manager|pkg/agent|pkg/plugin|pkg/session|pkg/net|pkg/managerclient' "shared by both sides"
done
exit $fail
