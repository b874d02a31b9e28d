# shellcheck shell=sh
# Sourced by the backup scripts. SSH to the NAS always checks its host key against the
# known_hosts entry from the stack settings (StrictHostKeyChecking=yes), never without.
# Inputs (environment): NAS_HOST, NAS_USER, NAS_PORT (default 22), SSH_KEY (private key file),
# KNOWN_HOSTS (file with the NAS's known_hosts line).

SCRIPTS_DIR="${SCRIPTS_DIR:-$(dirname "$0")}"

nas_setup() {
  : "${NAS_HOST:?NAS_HOST is required}" "${NAS_USER:?NAS_USER is required}"
  : "${SSH_KEY:?SSH_KEY is required}" "${KNOWN_HOSTS:?KNOWN_HOSTS is required}"
  if [ ! -r "$SSH_KEY" ]; then
    echo "backup: SSH key $SSH_KEY is not readable" >&2
    return 1
  fi
  if [ ! -s "$KNOWN_HOSTS" ]; then
    echo "backup: known_hosts file $KNOWN_HOSTS is missing or empty; refusing to skip host key checks" >&2
    return 1
  fi
  NAS_TMP=$(mktemp -d)
  trap 'rm -rf "$NAS_TMP"' EXIT
  # ssh refuses a key readable by others; the mounted Secret's mode is not ours to choose.
  (umask 077 && cat "$SSH_KEY" >"$NAS_TMP/id")
  NAS_SSH="ssh -i $NAS_TMP/id -p ${NAS_PORT:-22} -o BatchMode=yes -o StrictHostKeyChecking=yes -o UserKnownHostsFile=$KNOWN_HOSTS -o GlobalKnownHostsFile=/dev/null"
}

# Run a command on the NAS (arguments are joined by ssh; paths are validated settings).
nas_ssh() {
  # shellcheck disable=SC2086 # NAS_SSH is a command line built above, split on purpose
  $NAS_SSH "$NAS_USER@$NAS_HOST" "$@"
}

nas_rsync() {
  rsync -a -e "$NAS_SSH" "$@"
}

# Keep the newest $2 dated folders under $1 on the NAS, running retention.sh there.
nas_retention() {
  nas_ssh "BACKUP_ROOT='$1' KEEP='$2' sh -s" <"$SCRIPTS_DIR/retention.sh"
}

# Newest YYYY-MM-DD folder name under $1 on the NAS (empty if none).
nas_latest_day() {
  nas_ssh ls -1 -- "$1" | { grep -E '^[0-9]{4}-(0[1-9]|1[0-2])-(0[1-9]|[12][0-9]|3[01])$' || true; } | sort | tail -n 1
}

# Fail unless the PostgreSQL client's major version equals the server's.
pg_check_major() {
  client=$(pg_dump --version | awk '{print $3}' | cut -d. -f1)
  server_num=$(psql -v ON_ERROR_STOP=1 -X -d "${1:-postgres}" -tAc 'SHOW server_version_num')
  server=$((server_num / 10000))
  if [ "$client" != "$server" ]; then
    echo "backup: client major $client does not match server major $server" >&2
    return 1
  fi
}
