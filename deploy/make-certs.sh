#!/bin/sh
# A local CA and one server certificate for a test deployment (never for production: use your
# organization's CA). Usage: deploy/make-certs.sh [OUT_DIR] [NAME...]
#   OUT_DIR  where to write (default deploy/certs); NAME  DNS names or IP addresses the server
#   answers to (default: localhost 127.0.0.1 liaison.test). Writes ca.crt (give it to clients),
#   ca.key, server.crt (the chain: server then CA) and server.key (0600). Existing files are kept:
#   delete the directory to start again.
set -eu
out=${1:-"$(dirname "$0")/certs"}
[ $# -gt 0 ] && shift
[ $# -gt 0 ] || set -- localhost 127.0.0.1 liaison.test
mkdir -p "$out"
umask 077
if [ ! -f "$out/ca.key" ]; then
  openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 825 \
    -subj "/CN=Liaison test CA" -keyout "$out/ca.key" -out "$out/ca.crt" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
fi
if [ ! -f "$out/server.key" ]; then
  san=""
  for name in "$@"; do
    case "$name" in
      *[!0-9.:a-fA-F]*) kind=DNS ;;
      *[.:]*) kind=IP ;;
      *) kind=DNS ;;
    esac
    san="${san:+$san,}$kind:$name"
  done
  openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj "/CN=$1" \
    -keyout "$out/server.key" -out "$out/server.csr" 2>/dev/null
  printf 'subjectAltName=%s\nbasicConstraints=critical,CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n' \
    "$san" > "$out/server.ext"
  openssl x509 -req -in "$out/server.csr" -CA "$out/ca.crt" -CAkey "$out/ca.key" -CAcreateserial \
    -days 397 -extfile "$out/server.ext" -out "$out/server.only.crt" 2>/dev/null
  cat "$out/server.only.crt" "$out/ca.crt" > "$out/server.crt"
  rm -f "$out/server.csr" "$out/server.ext" "$out/server.only.crt" "$out/ca.srl"
fi
chmod 644 "$out/ca.crt" "$out/server.crt"
echo "certificates in $out: ca.crt (trust it on clients), server.crt, server.key"
