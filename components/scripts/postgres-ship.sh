#!/bin/sh
# Send the dump written by postgres-dump.sh to the NAS under $NAS_BASE/<YYYY-MM-DD>/ by rsync
# over SSH, then keep the newest $RETENTION dated folders.
# shellcheck disable=SC3040 # busybox ash (the image's /bin/sh) and bash support pipefail
set -euo pipefail
# shellcheck source=components/scripts/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

: "${DUMP_DIR:?DUMP_DIR is required}" "${PGDATABASE:?PGDATABASE is required}"
: "${NAS_BASE:?NAS_BASE is required}" "${RETENTION:?RETENTION is required}"
day="${BACKUP_DATE:-$(date +%Y-%m-%d)}"
dump="$DUMP_DIR/$PGDATABASE.dump"
if [ ! -s "$dump" ]; then
  echo "postgres-ship: no dump at $dump" >&2
  exit 1
fi

nas_setup
nas_ssh mkdir -p -- "$NAS_BASE/$day"
nas_rsync "$dump" "$NAS_USER@$NAS_HOST:$NAS_BASE/$day/$PGDATABASE.dump"
nas_retention "$NAS_BASE" "$RETENTION"
echo "postgres-ship: done"
