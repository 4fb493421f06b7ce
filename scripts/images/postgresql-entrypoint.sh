#!/bin/sh
# The entrypoint of the Debian-built PostgreSQL stand-in: the part of the official image's
# contract the chart uses. On an empty PGDATA it runs initdb with POSTGRES_USER as superuser and
# the password from POSTGRES_PASSWORD_FILE, creates POSTGRES_DB when it is not "postgres", runs
# /docker-entrypoint-initdb.d/*.sql once, then serves on every address.
set -eu
: "${PGDATA:?PGDATA is required}"
: "${POSTGRES_USER:=postgres}"
if [ "${1:-}" = postgres ] && [ ! -s "$PGDATA/PG_VERSION" ]; then
  mkdir -p "$PGDATA"
  chmod 0700 "$PGDATA"
  initdb --username="$POSTGRES_USER" --pwfile="${POSTGRES_PASSWORD_FILE:?}" \
    --auth-host=scram-sha-256 --auth-local=trust --encoding=UTF8 --locale=C.UTF-8 \
    -D "$PGDATA" >/dev/null
  # Local socket only while the init scripts run.
  pg_ctl -D "$PGDATA" -o "-c listen_addresses=''" -w start >/dev/null
  if [ "${POSTGRES_DB:-postgres}" != postgres ]; then
    psql -v ON_ERROR_STOP=1 -U "$POSTGRES_USER" -d postgres -c "CREATE DATABASE \"$POSTGRES_DB\""
  fi
  for script in /docker-entrypoint-initdb.d/*.sql; do
    [ -e "$script" ] || continue
    psql -v ON_ERROR_STOP=1 -q -U "$POSTGRES_USER" -d "${POSTGRES_DB:-postgres}" -f "$script"
  done
  pg_ctl -D "$PGDATA" -m fast -w stop >/dev/null
  echo "host all all all scram-sha-256" >>"$PGDATA/pg_hba.conf"
fi
if [ "${1:-}" = postgres ]; then
  shift
  exec postgres -D "$PGDATA" -c listen_addresses='*' "$@"
fi
exec "$@"
