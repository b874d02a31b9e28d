#!/bin/sh
# Restore drill, step 2: every SQLite database (*.db) in each fetched volume copy must pass
# PRAGMA integrity_check; a volume copy without a database fails too.
# shellcheck disable=SC3040 # busybox ash (the image's /bin/sh) and bash support pipefail
set -euo pipefail

: "${WORK:?WORK is required}" "${SQLITE_VOLUMES:?SQLITE_VOLUMES is required}"
for volume in $SQLITE_VOLUMES; do
  found=0
  for db in "$WORK/sqlite/$volume"/*.db; do
    [ -f "$db" ] || continue
    found=1
    result=$(sqlite3 -readonly "$db" 'PRAGMA integrity_check;')
    if [ "$result" != "ok" ]; then
      echo "drill-sqlite: $db failed integrity_check: $result" >&2
      exit 1
    fi
    echo "drill-sqlite: $db ok"
  done
  if [ "$found" -eq 0 ]; then
    echo "drill-sqlite: no SQLite database in the copy of $volume" >&2
    exit 1
  fi
done
