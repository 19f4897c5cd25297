#!/bin/sh
# Runs once, when the PostgreSQL volume is created: Superset keeps its metadata in its own
# database on the same server, owned by its own role (not the superuser, whose password only
# migrations and provisioning use). An existing volume: run these two statements by hand.
set -eu
case "${POSTGRES_PASSWORD:-}" in
  ""|change-me|changeme|change_me|password|secret|admin|postgres)
    echo "error: refusing to start: POSTGRES_PASSWORD is empty or a placeholder (e.g." \
      "change-me from .env.example): set it to a random value (openssl rand -hex 24)" >&2
    exit 2 ;;
esac
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$SUPERSET_DB_PASSWORD" <<'SQL'
CREATE ROLE superset LOGIN PASSWORD :'pw';
CREATE DATABASE superset OWNER superset;
SQL
