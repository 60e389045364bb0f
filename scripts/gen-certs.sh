#!/usr/bin/env bash
# Makes a test CA and a node certificate for TLS clusters (enableTLS, enableClusterReplicationSSL).
#
#   scripts/gen-certs.sh DIR [HOST ...]
#
# Writes into DIR (made if missing, mode 0700):
#   ca.pem, ca.key      the CA (made once; kept when it exists, so that certificates made
#                       later still verify against the same ca.pem)
#   node.pem, node.key  a certificate for 127.0.0.1, localhost, this machine's name and every
#                       HOST given (IP addresses or DNS names), signed by the CA, valid 825 days
# Private keys are mode 0600. Point the config files at them, e.g. in controller.cfg and
# cluster.cfg:  enableTLS=true  tlsCertFile=DIR/node.pem  tlsKeyFile=DIR/node.key  tlsCAFile=DIR/ca.pem
# and give clients the CA: xrepl --tls-ca DIR/ca.pem (or XREPL_TLS_CA=DIR/ca.pem).
# This is for tests and demos; in production use your organisation's CA.
set -euo pipefail
[ $# -ge 1 ] || { echo "usage: $0 DIR [HOST ...]" >&2; exit 2; }
command -v openssl >/dev/null || { echo "error: openssl is needed (Debian: apt-get install openssl)" >&2; exit 2; }
dir=$1; shift
mkdir -p "$dir" && chmod 700 "$dir"
umask 077

if [ ! -s "$dir/ca.pem" ] || [ ! -s "$dir/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 3650 \
    -subj "/CN=xrepl test CA" -keyout "$dir/ca.key" -out "$dir/ca.pem" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  echo "made the CA $dir/ca.pem (key $dir/ca.key)"
fi

sans="IP:127.0.0.1,DNS:localhost"
name=$(hostname 2>/dev/null || true)
[ -n "$name" ] && [ "$name" != localhost ] && sans="$sans,DNS:$name"
for h in "$@"; do
  if [[ $h =~ ^[0-9.]+$ || $h == *:* ]]; then sans="$sans,IP:$h"; else sans="$sans,DNS:$h"; fi
done

ext=$(mktemp)
trap 'rm -f "$ext" "$dir/node.csr"' EXIT
printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\nsubjectAltName=%s\n' "$sans" >"$ext"
openssl req -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "/CN=xrepl node" \
  -keyout "$dir/node.key" -out "$dir/node.csr" 2>/dev/null
openssl x509 -req -in "$dir/node.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca.key" -CAcreateserial \
  -days 825 -extfile "$ext" -out "$dir/node.pem" 2>/dev/null
chmod 644 "$dir/ca.pem" "$dir/node.pem"
# Private keys stay private even when an earlier run left them with other modes: a node
# refuses a tlsKeyFile others can read.
chmod 600 "$dir/ca.key" "$dir/node.key"
echo "made the node certificate $dir/node.pem (key $dir/node.key) for $sans"
