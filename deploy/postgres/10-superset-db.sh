#!/bin/sh
# Runs once, when the PostgreSQL volume is created: Superset keeps its metadata in its own
# database on the same server, owned by its own role (not the superuser, whose password only
# migrations and provisioning use). An existing volume: run these two statements by hand.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -v pw="$SUPERSET_DB_PASSWORD" <<'SQL'
CREATE ROLE superset LOGIN PASSWORD :'pw';
CREATE DATABASE superset OWNER superset;
SQL
