#!/usr/bin/env bash
# Runs once the node answers SSH again after node-prepare.sh (the connection's bounded dial
# retries are the wait). Confirms the node came back the way K3s needs it: the memory cgroup on
# the running kernel's command line and no active swap.
# No parameters. PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

root="${PI_CLUSTER_ROOT:-}"
running="$(cat "$root/proc/cmdline")"
for arg in cgroup_memory=1 cgroup_enable=memory; do
  if [[ " $running " != *" $arg "* ]]; then
    echo "error: $(hostname) runs without $arg on its kernel command line; check /boot/firmware/cmdline.txt" >&2
    exit 1
  fi
done
if (($(wc -l <"$root/proc/swaps") > 1)); then
  echo "error: $(hostname) still has active swap:" >&2
  cat "$root/proc/swaps" >&2
  exit 1
fi
echo "ready: memory cgroup on, swap off"
