#!/usr/bin/env bash
# The node's host identity, read on every preview and up (command:local:run runs on the machine
# that runs Pulumi, "executed unconditionally": pulumi/pulumi-command v1.2.1
# provider/pkg/provider/local/run.go). Prints the node's /etc/machine-id, which systemd generates
# on a new card's first start, so a new card is a new identity and every command of that node
# runs again on it. The images ship no id: an empty file on Bookworm (RPi-Distro/pi-gen tag
# 2026-06-18-raspios-bookworm-arm64 export-image/05-finalise/01-run.sh), "uninitialized" on
# Trixie (same file at tag 2026-06-18-raspios-trixie-arm64); systemd writes a generated id over
# either (machine-id(5), systemd 252, "First boot semantics").
# Checks on the way that the host key is the recorded one (OpenSSH, StrictHostKeyChecking=yes)
# and that sudo works without a password, so a wrong host or a 2026 image without passwordless
# sudo stops the preview, naming the node, before anything runs.
# Parameters (environment); the SSH private key arrives on stdin:
#   PI_CLUSTER_NODE      node name (for messages)
#   PI_CLUSTER_HOST      address
#   PI_CLUSTER_PORT      SSH port (default 22)
#   PI_CLUSTER_USER      SSH user
#   PI_CLUSTER_HOST_KEY  "<type> <base64>" of the node; empty only when the node skips the check
set -euo pipefail

: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
: "${PI_CLUSTER_HOST:?PI_CLUSTER_HOST is required}"
: "${PI_CLUSTER_USER:?PI_CLUSTER_USER is required}"
node="$PI_CLUSTER_NODE"
host="$PI_CLUSTER_HOST"
port="${PI_CLUSTER_PORT:-22}"
# The advice is the program's (components/cluster.py SUDO_HELP, written in by script()).
sudo_help=@PI_CLUSTER_SUDO_HELP@
umask 077
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cat >"$work/key"
# OpenSSH refuses a private key file whose last line has no newline; config values often lack it.
[[ -z "$(tail -c 1 "$work/key")" ]] || echo >>"$work/key"

opts=(-F /dev/null -i "$work/key" -p "$port" -o BatchMode=yes -o IdentitiesOnly=yes
  -o ConnectTimeout=10 -o LogLevel=ERROR)
if [[ -n "${PI_CLUSTER_HOST_KEY:-}" ]]; then
  name="$host"
  [[ "$port" == 22 ]] || name="[$host]:$port"
  printf '%s %s\n' "$name" "$PI_CLUSTER_HOST_KEY" >"$work/known_hosts"
  opts+=(-o StrictHostKeyChecking=yes)
else
  # The node stated why its key is not checked: take whatever key it shows this time (a fresh,
  # empty known_hosts each run), as pulumi-command does without hostKey.
  : >"$work/known_hosts"
  opts+=(-o StrictHostKeyChecking=accept-new)
fi
opts+=(-o "UserKnownHostsFile=$work/known_hosts")

# shellcheck disable=SC2016 # expanded on the node, not here
remote='sudo -n true 2>/dev/null || exit 3; cat "${PI_CLUSTER_ROOT:-}/etc/machine-id"'
rc=0
# shellcheck disable=SC2029 # $remote is one fixed command line, meant to be sent as it is
out="$(ssh "${opts[@]}" "$PI_CLUSTER_USER@$host" "$remote" 2>"$work/err")" || rc=$?
case "$rc" in
  0) ;;
  3)
    printf 'error: node %s (%s): %s cannot run sudo without a password.\n%s\n' \
      "$node" "$host" "$PI_CLUSTER_USER" "$sudo_help" >&2
    exit 1
    ;;
  *)
    echo "error: node $node ($host): SSH as $PI_CLUSTER_USER failed (exit $rc): $(tr '\n' ' ' <"$work/err")" >&2
    if grep -q "verification failed\|REMOTE HOST IDENTIFICATION" "$work/err"; then
      echo "The host key is not the one in hostKey: a new card (record its key with ssh-keyscan -t ed25519 $host and update hostKey) or another machine on $host." >&2
    fi
    exit 1
    ;;
esac
if [[ ! "$out" =~ ^[0-9a-f]{32}$ ]]; then
  echo "error: node $node ($host): /etc/machine-id is '$out', not 32 hex digits (has the card finished its first boot?)" >&2
  exit 1
fi
printf '%s\n' "$out"
