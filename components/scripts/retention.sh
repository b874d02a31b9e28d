#!/bin/sh
# Keep the newest $KEEP dated folders (YYYY-MM-DD, a real month and day) directly under
# $BACKUP_ROOT and delete the older ones. Nothing else is touched: other names, malformed dates,
# files and symlinks stay. Runs on the NAS (piped to `sh -s`) and in the tests on a temp dir.
# The NAS's sh may lack pipefail, so this script has no pipelines and sets only -eu.
set -eu

root="${BACKUP_ROOT:?BACKUP_ROOT is required}"
keep="${KEEP:?KEEP is required}"
case "$keep" in
  '' | *[!0-9]*)
    echo "retention: KEEP must be a whole number of at least 1, got '$keep'" >&2
    exit 2
    ;;
esac
if [ "$keep" -lt 1 ]; then
  echo "retention: KEEP must be at least 1, got '$keep'" >&2
  exit 2
fi
if [ ! -d "$root" ]; then
  echo "retention: $root is not a directory" >&2
  exit 1
fi

is_day() {
  case "$1" in
    [0-9][0-9][0-9][0-9]-[01][0-9]-[0-3][0-9]) ;;
    *) return 1 ;;
  esac
  month=${1#*-}
  month=${month%-*}
  day=${1##*-}
  [ "$month" -ge 1 ] && [ "$month" -le 12 ] && [ "$day" -ge 1 ] && [ "$day" -le 31 ]
}

# Pathname expansion is sorted, and YYYY-MM-DD sorts by date: oldest first.
days=""
total=0
for entry in "$root"/*; do
  name=${entry##*/}
  if [ -d "$entry" ] && [ ! -L "$entry" ] && is_day "$name"; then
    days="$days $name"
    total=$((total + 1))
  fi
done

excess=$((total - keep))
for day in $days; do
  [ "$excess" -gt 0 ] || break
  echo "retention: removing $root/$day"
  rm -rf -- "${root:?}/$day"
  excess=$((excess - 1))
done
echo "retention: $total dated folder(s) found, newest $keep kept in $root"
