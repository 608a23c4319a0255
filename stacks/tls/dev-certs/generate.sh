#!/usr/bin/env bash
# Regenerate the development CA and the `localhost` certificate that `morgana_tls::dev` embeds:
# `generate.sh` makes the ECDSA P-256 pair (ca.pem, server.pem, server.key), `generate.sh ed25519`
# the Ed25519 one (ed25519-ca.pem, ed25519-server.pem, ed25519-server.key). Run once; the output
# is committed. Never use these for anything but local development and
# tests: the files are public. The CA key is thrown away, so nothing else can be signed by it.
# Validity runs from 2000 to 2099 so that virtual clocks (which start in 2026) and real ones
# both accept it; `openssl ca` is used because it can set the start date on OpenSSL 3.0.
set -euo pipefail
cd "$(dirname "$0")"
case "${1:-p256}" in
    p256) alg=(-algorithm EC -pkeyopt ec_paramgen_curve:P-256) prefix= ;;
    ed25519) alg=(-algorithm ED25519) prefix=ed25519- ;;
    *) echo "usage: $0 [p256|ed25519]" >&2; exit 2 ;;
esac
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
touch "$tmp/index.txt"
cat > "$tmp/ca.cnf" <<CNF
[ca]
default_ca = dev
[dev]
database = $tmp/index.txt
new_certs_dir = $tmp
serial = $tmp/serial
default_md = sha256
policy = any
unique_subject = no
copy_extensions = none
[any]
commonName = supplied
[ca_ext]
basicConstraints = critical,CA:TRUE
keyUsage = critical,keyCertSign,cRLSign
subjectKeyIdentifier = hash
[leaf_ext]
basicConstraints = critical,CA:FALSE
keyUsage = critical,digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1
authorityKeyIdentifier = keyid
subjectKeyIdentifier = hash
CNF
echo 1000 > "$tmp/serial"
dates=(-startdate 20000101000000Z -enddate 20991231235959Z)

openssl genpkey "${alg[@]}" -out "$tmp/ca.key"
openssl req -new -key "$tmp/ca.key" -subj "/CN=Morgana development CA" -out "$tmp/ca.csr"
openssl ca -batch -notext -config "$tmp/ca.cnf" -selfsign -keyfile "$tmp/ca.key" -extensions ca_ext \
    "${dates[@]}" -in "$tmp/ca.csr" -out "${prefix}ca.pem"

openssl genpkey "${alg[@]}" -out "${prefix}server.key"
openssl req -new -key "${prefix}server.key" -subj "/CN=localhost" -out "$tmp/server.csr"
openssl ca -batch -notext -config "$tmp/ca.cnf" -cert "${prefix}ca.pem" -keyfile "$tmp/ca.key" -extensions leaf_ext \
    "${dates[@]}" -in "$tmp/server.csr" -out "${prefix}server.pem"
chmod 644 "${prefix}server.key"
openssl verify -CAfile "${prefix}ca.pem" "${prefix}server.pem"
