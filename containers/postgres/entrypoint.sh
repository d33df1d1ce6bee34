#!/usr/bin/env bash
# Entrypoint of the retail-forecast-postgres image.
#
#   postgres-entrypoint postgres [-c name=value ...]   (the default command)
#   postgres-entrypoint <anything else>                (run as given, e.g. bash)
#
# On the first start (no $PGDATA/PG_VERSION) it runs initdb into $PGDATA (the volume):
#   POSTGRES_PASSWORD  required; the password of POSTGRES_USER (SCRAM-SHA-256)
#   POSTGRES_USER      the superuser initdb creates (default postgres)
#   POSTGRES_DB        a database owned by POSTGRES_USER (default: none beyond `postgres`)
# Later starts keep the data, the user and the password as they are (changing the variables
# then changes nothing). PostgreSQL listens on every interface of the container (reach it over
# the compose network; the stack publishes no port for it) and asks every TCP client for a
# password; the local socket trusts local users (pg_isready, psql in `docker exec`).
# The server runs as the `postgres` user, as PID 1 (it handles SIGINT/SIGTERM itself).
set -euo pipefail

log() { echo "[postgres-entrypoint] $*" >&2; }

if [[ "${1:-}" != "postgres" ]]; then
    exec "$@"
fi
shift

: "${PGDATA:=/var/lib/postgresql/data}"
user="${POSTGRES_USER:-postgres}"
db="${POSTGRES_DB:-}"

if [[ $EUID -eq 0 ]]; then
    mkdir -p "$PGDATA" /run/postgresql
    chown postgres:postgres "$PGDATA" /run/postgresql
    chmod 0700 "$PGDATA"
    run=(setpriv --reuid=postgres --regid=postgres --init-groups --)
else
    run=()
fi

if [[ ! -s "$PGDATA/PG_VERSION" ]]; then
    if [[ -z "${POSTGRES_PASSWORD:-}" ]]; then
        log "the data directory $PGDATA is empty and POSTGRES_PASSWORD is not set: set it to" \
            "initialise the database"
        exit 2
    fi
    if [[ -n "$(ls -A "$PGDATA")" ]]; then
        log "$PGDATA is not empty but holds no PG_VERSION: refusing to initialise over it"
        exit 2
    fi
    log "initialising $PGDATA (superuser $user${db:+, database $db})"
    pwfile="$(mktemp)"
    trap 'rm -f "$pwfile"' EXIT
    printf '%s\n' "$POSTGRES_PASSWORD" > "$pwfile"
    [[ $EUID -eq 0 ]] && chown postgres "$pwfile"
    "${run[@]}" initdb --pgdata="$PGDATA" --username="$user" --pwfile="$pwfile" \
        --auth-local=trust --auth-host=scram-sha-256 --encoding=UTF8 --locale=C.UTF-8 >&2
    rm -f "$pwfile"
    # Every TCP client must give the password (initdb's own lines cover only loopback).
    printf '%s\n' "host all all 0.0.0.0/0 scram-sha-256" "host all all ::/0 scram-sha-256" \
        >> "$PGDATA/pg_hba.conf"
    if [[ -n "$db" && "$db" != "postgres" ]]; then
        # Single-user mode: no server listens while the database is made, so a healthcheck
        # (pg_isready) cannot pass before the database exists.
        ident="\"${db//\"/\"\"}\""
        owner="\"${user//\"/\"\"}\""
        echo "CREATE DATABASE $ident OWNER $owner;" \
            | "${run[@]}" postgres --single -j -D "$PGDATA" postgres >/dev/null
    fi
    log "initialised"
fi

exec "${run[@]}" postgres -D "$PGDATA" -c listen_addresses='*' "$@"
