#!/bin/sh
# Copy each stateful volume ($VOLUMES: "<namespace>_<pvc> ...", derived from the stack's volume
# registry) from the node's local-path directory to the NAS under
# $NAS_BASE/<YYYY-MM-DD>/<namespace>_<pvc>/, then keep the newest $RETENTION dated folders.
# A volume without exactly one local-path directory fails the Job.
# shellcheck disable=SC3040 # busybox ash (the image's /bin/sh) and bash support pipefail
set -euo pipefail
# shellcheck source=components/scripts/backup-lib.sh
. "$(dirname "$0")/backup-lib.sh"

: "${VOLUMES:?VOLUMES is required}" "${NAS_BASE:?NAS_BASE is required}" "${RETENTION:?RETENTION is required}"
root="${STORAGE_ROOT:-/storage}"
day="${BACKUP_DATE:-$(date +%Y-%m-%d)}"

nas_setup
nas_ssh mkdir -p -- "$NAS_BASE/$day"
for volume in $VOLUMES; do
  # local-path names each directory pvc-<uid>_<namespace>_<pvc>.
  set -- "$root"/*_"$volume"
  if [ "$#" -ne 1 ] || [ ! -d "$1" ]; then
    echo "pvc-backup: expected one directory *_$volume under $root, found: $*" >&2
    exit 1
  fi
  echo "pvc-backup: $volume from $1"
  nas_rsync --delete "$1/" "$NAS_USER@$NAS_HOST:$NAS_BASE/$day/$volume/"
done
nas_retention "$NAS_BASE" "$RETENTION"
echo "pvc-backup: done"
