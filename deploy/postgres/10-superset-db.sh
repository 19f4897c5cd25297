#!/bin/sh
# Runs once, when the PostgreSQL volume is created: Superset keeps its metadata in its own
# database on the same server.
set -eu
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" \
  -c "CREATE DATABASE superset"
