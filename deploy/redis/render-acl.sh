#!/bin/sh
# Render deploy/redis/users.acl.in into the aclfile master.conf and replica.conf name.
#   FOODAPP_REDIS_PASSWORD=... REDIS_ADMIN_PASSWORD=... REDIS_REPLICA_PASSWORD=... \
#   REDIS_SENTINEL_PASSWORD=... deploy/redis/render-acl.sh [/etc/redis/foodapp-users.acl]
# FOODAPP_REDIS_PASSWORD is the app's (the web processes' and workers' environment);
# REDIS_REPLICA_PASSWORD is the replica's masterauth, REDIS_SENTINEL_PASSWORD the
# Sentinels' `sentinel auth-pass`. The file gets only SHA-256 digests, mode 0600.
set -eu
out=${1:-/etc/redis/foodapp-users.acl}
here=$(dirname "$0")
: "${FOODAPP_REDIS_PASSWORD:?set FOODAPP_REDIS_PASSWORD: the app's Redis password}"
: "${REDIS_ADMIN_PASSWORD:?set REDIS_ADMIN_PASSWORD: the operators' (user admin) password}"
: "${REDIS_REPLICA_PASSWORD:?set REDIS_REPLICA_PASSWORD: the replica's masterauth (user replica)}"
: "${REDIS_SENTINEL_PASSWORD:?set REDIS_SENTINEL_PASSWORD: the Sentinels' auth-pass (user sentinel)}"
sha() { printf '%s' "$1" | sha256sum | cut -d' ' -f1; }
umask 077
grep -v -e '^#' -e '^[[:space:]]*$' "$here/users.acl.in" | sed \
    -e "s/@APP_PASSWORD_SHA256@/$(sha "$FOODAPP_REDIS_PASSWORD")/" \
    -e "s/@ADMIN_PASSWORD_SHA256@/$(sha "$REDIS_ADMIN_PASSWORD")/" \
    -e "s/@REPLICA_PASSWORD_SHA256@/$(sha "$REDIS_REPLICA_PASSWORD")/" \
    -e "s/@SENTINEL_PASSWORD_SHA256@/$(sha "$REDIS_SENTINEL_PASSWORD")/" > "$out.tmp"
mv "$out.tmp" "$out"
echo "wrote $out ($(wc -l < "$out") users)"
