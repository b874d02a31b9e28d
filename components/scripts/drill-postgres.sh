#!/bin/sh
# Restore drill, step 3: restore $DUMP into a scratch database ($DRILL_DB) on the server, check
# that each of $TABLES has rows, and drop the scratch database again. Any failure fails the Job.
# shellcheck disable=SC3040 # bash and busybox ash support pipefail
set -euo pipefail
# shellcheck source=components/scripts/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

: "${PGHOST:?PGHOST is required}" "${PGUSER:?PGUSER is required}" "${PGPASSWORD:?PGPASSWORD is required}"
: "${DUMP:?DUMP is required}" "${DRILL_DB:?DRILL_DB is required}" "${TABLES:?TABLES is required}"
if [ "$DRILL_DB" = "${PGDATABASE:-}" ]; then
  echo "drill-postgres: scratch database must not be the live database $DRILL_DB" >&2
  exit 2
fi

sql() {
  psql -v ON_ERROR_STOP=1 -X -d postgres -c "$1"
}
drop_scratch() {
  sql "DROP DATABASE IF EXISTS \"$DRILL_DB\"" || true
}

pg_check_major postgres
sql "DROP DATABASE IF EXISTS \"$DRILL_DB\""
sql "CREATE DATABASE \"$DRILL_DB\""
trap drop_scratch EXIT
pg_restore --exit-on-error --no-owner --no-privileges -d "$DRILL_DB" "$DUMP"
echo "drill-postgres: restore ok"
for table in $TABLES; do
  rows=$(psql -v ON_ERROR_STOP=1 -X -d "$DRILL_DB" -tAc "SELECT count(*) FROM \"$table\"")
  if [ "$rows" -le 0 ]; then
    echo "drill-postgres: table $table has no rows after restore" >&2
    exit 1
  fi
  echo "drill-postgres: $table has $rows rows"
done
