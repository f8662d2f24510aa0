#!/usr/bin/env bash
# Makes the TLS fixtures the tests use (committed in tls/; run again only to
# replace them). EC P-256 keys, valid for 100 years:
#
#   ca.pem, ca-key.pem                    "Vigil Test CA"
#   server.pem, server-key.pem            localhost, 127.0.0.1 and ::1, signed by the test CA
#   named.pem, named-key.pem              vigil.test only (no address), signed by the test CA
#   client.pem, client-key.pem            "test-client", a client certificate signed by the test CA
#   other-ca.pem, other-ca-key.pem        an unrelated CA ("Other Test CA")
#   other-client.pem, other-client-key.pem  a client certificate signed by the unrelated CA
#   expired.pem, expired-key.pem          localhost, signed by the test CA, valid only in January 2020
#   future.pem, future-key.pem            localhost, signed by the test CA, valid only from 2090
#
# Test keys only: they are public, never use them for anything else.
set -euo pipefail
cd "$(dirname "$0")/tls"
days=36500

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1"; }

ca() { # NAME "SUBJECT"
    key "$1-key.pem"
    openssl req -x509 -new -key "$1-key.pem" -sha256 -days "$days" -subj "$2" -out "$1.pem" \
        -addext "basicConstraints=critical,CA:TRUE" \
        -addext "keyUsage=critical,keyCertSign,cRLSign" \
        -addext "subjectKeyIdentifier=hash"
}

leaf() { # NAME "SUBJECT" CA EXTENSIONS
    key "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "$2" -out "$1.csr"
    printf '%s\n' "basicConstraints=critical,CA:FALSE" "keyUsage=critical,digitalSignature" \
        "subjectKeyIdentifier=hash" "authorityKeyIdentifier=keyid" "$4" > "$1.ext"
    openssl x509 -req -in "$1.csr" -CA "$3.pem" -CAkey "$3-key.pem" -CAcreateserial -sha256 -days "$days" \
        -extfile "$1.ext" -out "$1.pem"
    rm -f "$1.csr" "$1.ext" "$3.srl"
}

ca ca "/CN=Vigil Test CA"
ca other-ca "/CN=Other Test CA"
leaf server "/CN=localhost" ca $'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1'
leaf named "/CN=vigil.test" ca $'extendedKeyUsage=serverAuth\nsubjectAltName=DNS:vigil.test'
leaf client "/CN=test-client/O=Vigil Tests" ca "extendedKeyUsage=clientAuth"
leaf other-client "/CN=other-client" other-ca "extendedKeyUsage=clientAuth"

dated() { # NAME START END (YYYYMMDDHHMMSSZ): a server certificate valid only then
    key "$1-key.pem"
    openssl req -new -key "$1-key.pem" -subj "/CN=localhost" -out "$1.csr"
    local work; work=$(mktemp -d)
    touch "$work/index.txt"; echo 1000 > "$work/serial"
    printf '%s\n' "[ca]" "default_ca = test" "[test]" "dir = $work" "database = $work/index.txt" \
        "new_certs_dir = $work" "serial = $work/serial" "default_md = sha256" "policy = any" \
        "unique_subject = no" "[any]" "commonName = supplied" "[leaf]" "basicConstraints = critical,CA:FALSE" \
        "keyUsage = critical,digitalSignature" "extendedKeyUsage = serverAuth" \
        "subjectAltName = DNS:localhost,IP:127.0.0.1,IP:::1" > "$work/ca.cnf"
    openssl ca -batch -config "$work/ca.cnf" -cert ca.pem -keyfile ca-key.pem -extensions leaf \
        -startdate "$2" -enddate "$3" -in "$1.csr" -out "$1.pem" -notext
    rm -rf "$1.csr" "$work"
}

dated expired 20200101000000Z 20200201000000Z
dated future 20900101000000Z 20910101000000Z
