#!/bin/sh
# The `keys` one-shot of docker-compose.yml (installed as bodhi-keys-init in the images): make sure the workers' key
# pair exists in the keys volume, then publish its PUBLIC half alone to the volume the API mounts.
#
#   BODHI_HOME/keys     (volume `keys`, mounted by the remote workers): worker_private_key*.pem + worker_public_key.pem
#   /var/lib/bodhi/public (volume `public-key`, mounted by the API):     worker_public_key.pem only
#
# Safe to re-run: an existing pair is kept (`bodhi keys create` refuses to replace one), and the public key is
# copied again, which is the last step after `bodhi keys rotate`. The copy is renamed into place, so the API, which
# reads the file at each use, never sees half a key.
set -eu
keys="${BODHI_HOME:-/var/lib/bodhi}/keys"
public="${BODHI_PUBLIC_KEY_DIR:-/var/lib/bodhi/public}"
if [ ! -e "$keys/worker_private_key.pem" ]; then
    bodhi keys create --dir "$keys"
fi
cp "$keys/worker_public_key.pem" "$public/.worker_public_key.pem.tmp"
chmod 0644 "$public/.worker_public_key.pem.tmp"
mv "$public/.worker_public_key.pem.tmp" "$public/worker_public_key.pem"
echo "public key published to $public/worker_public_key.pem; private keys stay in $keys"
