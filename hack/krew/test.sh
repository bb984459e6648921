#!/usr/bin/env bash
# test.sh installs kubectl tele with krew, as a user would, from the manifest
# (MANIFEST, krew/tele.yaml by default) and the linux/amd64 archive that
# hack/krew/release.sh made, into a throwaway KREW_ROOT, and
# checks what the user then sees through kubectl: `kubectl tele version`, and
# the completion kubectl asks kubectl_complete-tele for. No cluster needed.
#
# krew is built once from the Go module proxy into hack/kind/.cache/krew/, and
# kubectl is the one the local cluster uses (hack/kind/build-k8s.sh).
set -euo pipefail
root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
# shellcheck source=hack/kind/lib.sh
. hack/kind/lib.sh
unset -f kubectl # lib.sh's points at the local cluster; here kubectl is the user's, from PATH

KREW_TOOL_VERSION=${KREW_TOOL_VERSION:-v0.4.3} # the latest on the module proxy
krew_dir=$CACHE_DIR/krew/$KREW_TOOL_VERSION
krew=$krew_dir/krew
manifest=${MANIFEST:-krew/tele.yaml}
archive=bin/krew/kubectl-tele_linux_amd64.tar.gz

step() { printf '%s [krew-test] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
fail() { step "FAIL: $*"; exit 1; }

[ "$(go env GOOS)/$(go env GOARCH)" = linux/amd64 ] || fail "this test installs the linux/amd64 archive; run it on linux/amd64"
[ -f "$manifest" ] && [ -f "$archive" ] || fail "$manifest or $archive missing: run make krew"

if [ ! -x "$krew" ]; then
  step "build krew $KREW_TOOL_VERSION from the Go module proxy into $krew_dir"
  mkdir -p "$krew_dir"
  (cd "$krew_dir" && GOBIN=$krew_dir CGO_ENABLED=0 timeout 300 go install "sigs.k8s.io/krew/cmd/krew@$KREW_TOOL_VERSION")
fi
if [ ! -x "$K8S_BIN/kubectl" ]; then
  step "build kubectl $K8S_VERSION"
  hack/kind/build-k8s.sh
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
export KREW_ROOT=$tmp/krew-root KREW_NO_UPGRADE_CHECK=1 HOME=$tmp/home
mkdir -p "$HOME"
# Only krew's bin dir and kubectl: nothing else of ours may be found on PATH.
mkdir -p "$tmp/kubectl-bin"
ln -s "$K8S_BIN/kubectl" "$tmp/kubectl-bin/kubectl"
export PATH=$KREW_ROOT/bin:$tmp/kubectl-bin:/usr/bin:/bin
# kubectl tele version needs no cluster, but give kubectl nothing to read.
export KUBECONFIG=$tmp/no-kubeconfig

step "krew install --manifest=$manifest --archive=$archive (KREW_ROOT=$KREW_ROOT)"
"$krew" install --manifest="$manifest" --archive="$archive" </dev/null 2>&1 | sed 's/^/    /'
[ -L "$KREW_ROOT/bin/kubectl-tele" ] || fail "krew did not link kubectl-tele into $KREW_ROOT/bin"
[ -f "$KREW_ROOT/receipts/tele.yaml" ] || fail "krew wrote no receipt for tele"
# krew list and uninstall want the default plugin index, a git clone from
# GitHub; an empty local repository stands in for it, so the test stays offline.
mkdir -p "$KREW_ROOT/index/default/plugins"
git -C "$KREW_ROOT/index/default" init -q
"$krew" list 2>/dev/null | grep -qE '^(detached/)?tele$' || fail "krew list does not show tele"

step "kubectl tele version"
out=$(kubectl tele version) || fail "kubectl tele version: $out"
printf '%s\n' "$out" | sed 's/^/    /'
grep -q '^Client Version: ' <<<"$out" || fail "kubectl tele version did not print Client Version:"

# krew links only the manifest's bin; the manifest's caveats tell the user to
# copy kubectl_complete-tele next to it. Do what they say.
version=$(sed -n 's/^  version: //p' "$manifest")
helper=$KREW_ROOT/store/tele/$version/kubectl_complete-tele
[ -x "$helper" ] || fail "$helper missing from the installed plugin"
step "the caveats' step: cp $helper $KREW_ROOT/bin/"
cp "$helper" "$KREW_ROOT/bin/"

# kubectl runs kubectl_complete-tele with the words after "tele" (no
# __complete); the helper adds it.
step "kubectl_complete-tele \"\" (what kubectl runs on kubectl tele <TAB>)"
out=$(kubectl_complete-tele "") || fail "kubectl_complete-tele: $out"
printf '%s\n' "$out" | sed 's/^/    /'
for sub in connect intercept leave list quit status version completion; do
  grep -q "^$sub"$'\t' <<<"$out" || fail "kubectl_complete-tele does not offer $sub"
done
grep -qE '^(daemon|helper|manager|agent)'$'\t' <<<"$out" && fail "kubectl_complete-tele offers a hidden command"

step "kubectl __complete tele \"\" (kubectl's own completion, through the helper)"
out=$(kubectl __complete tele "" 2>/dev/null) || fail "kubectl __complete tele: $out"
printf '%s\n' "$out" | sed 's/^/    /'
grep -q "^intercept"$'\t' <<<"$out" || fail "kubectl __complete tele \"\" does not offer intercept"
out=$(kubectl __complete tele l 2>/dev/null)
grep -q "^leave"$'\t' <<<"$out" && grep -q "^list"$'\t' <<<"$out" || fail "kubectl __complete tele l: $out"

"$krew" uninstall tele >/dev/null 2>&1 || fail "krew uninstall tele"
[ ! -e "$KREW_ROOT/bin/kubectl-tele" ] || fail "krew uninstall left $KREW_ROOT/bin/kubectl-tele"
step "PASS: krew installs, kubectl tele runs, kubectl completes it, krew uninstalls"
