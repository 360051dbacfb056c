#!/bin/sh
# dev-certs.sh DIR [NAME...] — a development CA and certificates with openssl.
#
# Writes DIR/ca.crt and DIR/ca.key (once; reused on later runs), then for each
# NAME (default: core edge) DIR/NAME.crt and DIR/NAME.key, valid for
# localhost and 127.0.0.1 (librdkafka verifies the broker's hostname) and
# usable both as server and as client certificate (brokers authenticate each
# other with them on Raft and the forwarding RPC). A NAME can also be a
# device or client id: with principal_rule CN its certificate logs in as
# User:NAME on an SSL listener.
#
# Development only: the CA key sits next to the certificates, unencrypted.
#
#   deploy/dev-certs.sh data/certs core-1 core-2 core-3 edge-1 alice
#   kcat -b 127.0.0.1:9093 -X security.protocol=SSL -X ssl.ca.location=data/certs/ca.crt \
#        -X ssl.certificate.location=data/certs/alice.crt -X ssl.key.location=data/certs/alice.key -L
set -eu

dir=${1:?usage: dev-certs.sh DIR [NAME...]}
shift
[ $# -gt 0 ] || set -- core edge
days=${DAYS:-825}
mkdir -p "$dir"
umask 077

if [ ! -f "$dir/ca.key" ]; then
	openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/ca.key" -out "$dir/ca.crt" -days "$days" \
		-subj "/O=tributary dev/CN=tributary dev CA" \
		-addext "basicConstraints=critical,CA:TRUE" \
		-addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
	chmod 644 "$dir/ca.crt"
	echo "made $dir/ca.crt"
fi

for name in "$@"; do
	ext=$(mktemp)
	cat >"$ext" <<EXT
basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=DNS:localhost,DNS:$name,IP:127.0.0.1,IP:::1
EXT
	openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
		-keyout "$dir/$name.key" -out "$dir/$name.csr" \
		-subj "/O=tributary dev/CN=$name" 2>/dev/null
	openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" \
		-CAcreateserial -out "$dir/$name.crt" -days "$days" -extfile "$ext" 2>/dev/null
	rm -f "$dir/$name.csr" "$ext"
	chmod 644 "$dir/$name.crt"
	echo "made $dir/$name.crt ($dir/$name.key)"
done
