#!/bin/sh
# Dump the database in custom format at compression 9 into $DUMP_DIR/<db>.dump, with a client
# whose major version matches the server's (checked, not assumed). Connection from PG* variables.
# shellcheck disable=SC3040 # bash and busybox ash support pipefail
set -euo pipefail
# shellcheck source=components/scripts/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

: "${PGHOST:?PGHOST is required}" "${PGUSER:?PGUSER is required}" "${PGDATABASE:?PGDATABASE is required}"
: "${PGPASSWORD:?PGPASSWORD is required}" "${DUMP_DIR:?DUMP_DIR is required}"

pg_check_major "$PGDATABASE"
out="$DUMP_DIR/$PGDATABASE.dump"
pg_dump -Fc -Z9 -f "$out.partial" "$PGDATABASE"
pg_restore --list "$out.partial" >/dev/null
mv "$out.partial" "$out"
echo "postgres-dump: wrote $out"
