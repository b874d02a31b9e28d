#!/bin/sh
# Restore drill, step 1: fetch the newest database dump and the newest copy of each SQLite
# volume ($SQLITE_VOLUMES: "<namespace>_<pvc> ...") from the NAS into $WORK.
# shellcheck disable=SC3040 # busybox ash (the image's /bin/sh) and bash support pipefail
set -euo pipefail
# shellcheck source=components/scripts/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

: "${WORK:?WORK is required}" "${PG_BASE:?PG_BASE is required}" "${VOLUMES_BASE:?VOLUMES_BASE is required}"
: "${PGDATABASE:?PGDATABASE is required}"

nas_setup
day=$(nas_latest_day "$PG_BASE")
if [ -z "$day" ]; then
  echo "drill-fetch: no dated dump folder under $PG_BASE" >&2
  exit 1
fi
echo "drill-fetch: dump of $day"
nas_rsync "$NAS_USER@$NAS_HOST:$PG_BASE/$day/$PGDATABASE.dump" "$WORK/db.dump"

if [ -n "${SQLITE_VOLUMES:-}" ]; then
  day=$(nas_latest_day "$VOLUMES_BASE")
  if [ -z "$day" ]; then
    echo "drill-fetch: no dated volume folder under $VOLUMES_BASE" >&2
    exit 1
  fi
  for volume in $SQLITE_VOLUMES; do
    echo "drill-fetch: $volume of $day"
    mkdir -p "$WORK/sqlite/$volume"
    nas_rsync "$NAS_USER@$NAS_HOST:$VOLUMES_BASE/$day/$volume/" "$WORK/sqlite/$volume/"
  done
fi
