#!/usr/bin/env bash
# pki.sh makes the local cluster's certificates with openssl: one CA, the API
# server's and the registries' serving certificates, client certificates for each component and the
# admin, the kubelet's serving certificate, and the service-account key pair.
# Then it writes the kubeconfigs. Idempotent: what exists is kept.
set -euo pipefail
. "$(cd "$(dirname "$0")" && pwd)/lib.sh"

pki=$STATE/pki
mkdir -p "$pki"
cd "$pki"

if [ ! -f ca.crt ]; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.crt -days 3650 \
    -subj "/CN=kubectl-tele-local-ca" 2>/dev/null
fi
if [ ! -f sa.key ]; then
  openssl genrsa -out sa.key 2048 2>/dev/null
  openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
fi

# cert NAME SUBJECT [SANS] [serverAuth|clientAuth]
cert() {
  local name=$1 subj=$2 sans=${3:-} usage=${4:-clientAuth}
  [ -f "$name.crt" ] && return 0
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$usage"
    [ -n "$sans" ] && echo "subjectAltName=$sans"
  } >"$name.ext"
  openssl req -newkey rsa:2048 -nodes -keyout "$name.key" -out "$name.csr" -subj "$subj" 2>/dev/null
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -out "$name.crt" \
    -days 3650 -extfile "$name.ext" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}

cert apiserver "/CN=kube-apiserver" \
  "IP:$NODE_IP,IP:127.0.0.1,IP:$API_SERVICE_IP,DNS:kubernetes,DNS:kubernetes.default,DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.$CLUSTER_DOMAIN,DNS:localhost" \
  serverAuth
cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client"
cert kubelet-server "/CN=$NODE_NAME" "IP:$NODE_IP,DNS:$NODE_NAME" serverAuth
cert registry "/CN=kubectl-tele-local-registry" "IP:$NODE_IP" serverAuth
cert admin "/O=system:masters/CN=kubernetes-admin"
cert kubelet "/O=system:nodes/CN=system:node:$NODE_NAME"
cert controller-manager "/CN=system:kube-controller-manager"
cert scheduler "/CN=system:kube-scheduler"
cert kube-proxy "/CN=system:kube-proxy"

# kubeconfig FILE USER: the certificates are embedded so the file can be
# copied (into a laptop namespace, to another user) as it is.
kubeconfig() {
  local file=$1 user=$2
  cat >"$file" <<KC
apiVersion: v1
kind: Config
clusters:
- name: tele-local
  cluster:
    server: https://$NODE_IP:$API_PORT
    certificate-authority-data: $(base64 -w0 ca.crt)
users:
- name: $user
  user:
    client-certificate-data: $(base64 -w0 "$user.crt")
    client-key-data: $(base64 -w0 "$user.key")
contexts:
- name: tele-local
  context:
    cluster: tele-local
    user: $user
current-context: tele-local
KC
  chmod 600 "$file"
}
for c in kubelet controller-manager scheduler kube-proxy; do kubeconfig "$STATE/$c.kubeconfig" "$c"; done
kubeconfig "$KUBECONFIG_FILE" admin
