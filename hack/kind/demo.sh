#!/usr/bin/env bash
# demo.sh shows kubectl-tele on the local cluster: a sample app, a laptop
# network namespace that reaches only the API server, and what the laptop can
# reach before and after kubectl tele connect.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/lib.sh"
say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

say "sample app: deploy/echo in namespace demo"
kubectl create namespace demo --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo create deployment echo --image="$ECHO_IMAGE" --port 8080 --dry-run=client -o yaml | kubectl apply -f - >/dev/null
kubectl -n demo get svc echo >/dev/null 2>&1 || kubectl -n demo expose deployment echo --port 8080 >/dev/null
kubectl -n demo rollout status deployment/echo --timeout=120s
kubectl -n demo get pods,svc -o wide

say "a laptop (network namespace tele-lap1) that reaches only the API server"
"$here/laptop.sh" up 1 >/dev/null
"$here/laptop.sh" exec 1 curl -sS --max-time 3 http://echo.demo:8080/ || true
