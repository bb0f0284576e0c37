#!/usr/bin/env bash
# A PostgreSQL-backed Prefect server: PostgreSQL from Debian's packages, a cluster in a project-local
# directory bound to 127.0.0.1, one database, and the Prefect UI/API on it (asyncpg driver).
#
#   bash deployments/postgres.sh ui      # start PostgreSQL, then `deployments/ui.sh` on it (make ui-postgres)
#   bash deployments/postgres.sh start   # start PostgreSQL only; prints the connection URL
#   bash deployments/postgres.sh stop    # stop the cluster
#   bash deployments/postgres.sh url     # print PREFECT_SERVER_DATABASE_CONNECTION_URL's value
#
# Environment: CLOSEDLOOP_PG_DIR (default runs/postgres; the cluster and its password file),
# CLOSEDLOOP_PG_PORT (default: a free port, remembered in the cluster directory), CLOSEDLOOP_PG_DB
# (default prefect). PostgreSQL refuses to run as root, so under root the cluster belongs to the
# `postgres` system user (created by Debian's package) and the directory must be reachable by it.
# Password authentication (scram-sha-256) on 127.0.0.1 only; no other address is listened on.
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
BIN=$REPO/.venv/bin
DIR=${CLOSEDLOOP_PG_DIR:-$REPO/runs/postgres}
DB=${CLOSEDLOOP_PG_DB:-prefect}
DATA=$DIR/data
PWFILE=$DIR/password
PORTFILE=$DIR/port
PGUSER_NAME=prefect

die() { echo "postgres.sh: $*" >&2; exit 1; }

installed_bin() {
  ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n 1 || true
}

find_bin() {
  local found
  found=$(installed_bin)
  if [[ -z "$found" || ! -x "$found/initdb" ]]; then
    command -v apt-get >/dev/null || die "PostgreSQL is not installed and apt-get is unavailable (install postgresql)"
    [[ $(id -u) == 0 ]] || die "PostgreSQL is not installed; run 'apt-get install -y postgresql' as root"
    echo "installing PostgreSQL from Debian's packages ..." >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q postgresql >&2 || die "apt-get install postgresql failed"
    found=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n 1)
  fi
  echo "$found"
}

# Run a PostgreSQL program as the cluster's owner: `postgres` when we are root, else ourselves.
as_owner() {
  if [[ $(id -u) == 0 ]]; then
    id postgres >/dev/null 2>&1 || die "running as root needs the 'postgres' system user (Debian's postgresql package creates it)"
    runuser -u postgres -- "$@"
  else
    "$@"
  fi
}

free_port() {
  "$BIN/python" -c "import socket; s = socket.socket(); s.bind(('127.0.0.1', 0)); print(s.getsockname()[1])"
}

url() {
  [[ -f $PWFILE && -f $PORTFILE ]] || die "no cluster in $DIR (run: bash deployments/postgres.sh start)"
  echo "postgresql+asyncpg://$PGUSER_NAME:$(cat "$PWFILE")@127.0.0.1:$(cat "$PORTFILE")/$DB"
}

start() {
  local pgbin port
  pgbin=$(find_bin)
  if [[ $(id -u) == 0 ]] && ! id postgres >/dev/null 2>&1; then
    die "running as root needs the 'postgres' system user (Debian's postgresql package creates it)"
  fi
  mkdir -p "$DIR"
  chmod 700 "$DIR"
  if [[ $(id -u) == 0 ]]; then chown postgres: "$DIR"; fi
  as_owner test -w "$DIR" || die "$DIR is not writable by the cluster owner (postgres): pick CLOSEDLOOP_PG_DIR it can reach"
  if [[ ! -f $DATA/PG_VERSION ]]; then
    "$BIN/python" -c "import secrets; print(secrets.token_hex(16))" > "$PWFILE"
    chmod 600 "$PWFILE"
    if [[ $(id -u) == 0 ]]; then chown postgres: "$PWFILE"; fi
    as_owner "$pgbin/initdb" -D "$DATA" -U "$PGUSER_NAME" --pwfile="$PWFILE" --auth-local=scram-sha-256 \
      --auth-host=scram-sha-256 --encoding=UTF8 --no-instructions >"$DIR/initdb.log" 2>&1 \
      || die "initdb failed: $(tail -n 5 "$DIR/initdb.log")"
  fi
  if as_owner "$pgbin/pg_ctl" -D "$DATA" status >/dev/null 2>&1; then
    echo "PostgreSQL already running in $DATA" >&2
  else
    port=${CLOSEDLOOP_PG_PORT:-$( [[ -f $PORTFILE ]] && cat "$PORTFILE" || free_port )}
    echo "$port" > "$PORTFILE"
    as_owner "$pgbin/pg_ctl" -D "$DATA" -l "$DIR/postgres.log" -w -t 60 \
      -o "-c listen_addresses=127.0.0.1 -p $port -k $DIR" start >&2 \
      || die "PostgreSQL did not start: $(tail -n 5 "$DIR/postgres.log" 2>/dev/null)"
  fi
  export PGPASSWORD
  PGPASSWORD=$(cat "$PWFILE")
  if [[ -z $("$pgbin/psql" -h 127.0.0.1 -p "$(cat "$PORTFILE")" -U "$PGUSER_NAME" -d postgres -tAc \
        "SELECT 1 FROM pg_database WHERE datname = '$DB'") ]]; then
    "$pgbin/createdb" -h 127.0.0.1 -p "$(cat "$PORTFILE")" -U "$PGUSER_NAME" "$DB" || die "createdb $DB failed"
  fi
  url
}

stop() {
  local pgbin
  pgbin=$(installed_bin)
  [[ -n $pgbin && -f $DATA/PG_VERSION ]] || return 0
  as_owner "$pgbin/pg_ctl" -D "$DATA" -m fast -w stop >&2 || true
}

case "${1:-ui}" in
  start) start ;;
  stop) stop ;;
  url) url ;;
  ui)
    PREFECT_SERVER_DATABASE_CONNECTION_URL=$(start)
    export PREFECT_SERVER_DATABASE_CONNECTION_URL
    trap stop EXIT
    echo "Prefect database: PostgreSQL on 127.0.0.1:$(cat "$PORTFILE") (cluster in $DIR)"
    bash deployments/ui.sh
    ;;
  *) die "unknown command '$1' (one of: ui, start, stop, url)" ;;
esac
