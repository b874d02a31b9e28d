#!/usr/bin/env bash
# Runs once the node answers SSH again after node-prepare.sh. The wait itself is the connection's
# dial, retried without a count and cut off by the command's create/update timeout
# (k3s.rebootTimeoutSeconds; pulumi/pulumi-go-provider v1.3.0 middleware/cancel turns the
# operation timeout into the context deadline that pulumi-command's dial retries stop on).
# Confirms the node came back the way K3s needs it: a new boot when prepare asked for a reboot,
# the memory cgroup in /sys/fs/cgroup/cgroup.controllers, no active swap, 4K pages on a Pi 5.
# Parameters (environment):
#   PI_CLUSTER_NODE       node name (for messages)
#   PI_CLUSTER_PREPARED   what node-prepare.sh printed (reboot=yes|no, boot_id=...)
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
: "${PI_CLUSTER_PREPARED:?PI_CLUSTER_PREPARED is required}"
root="${PI_CLUSTER_ROOT:-}"
node="$PI_CLUSTER_NODE"
asked="$(sed -n 's/^reboot=//p' <<<"$PI_CLUSTER_PREPARED")"
before="$(sed -n 's/^boot_id=//p' <<<"$PI_CLUSTER_PREPARED")"
boot="$(cat "$root/proc/sys/kernel/random/boot_id")"
problems=()

if [[ "$asked" == yes && "$boot" == "$before" ]]; then
  problems+=("it was to reboot but still runs boot $before (was the reboot cancelled?)")
fi
if ! grep -qw memory "$root/sys/fs/cgroup/cgroup.controllers" 2>/dev/null; then
  problems+=("the running kernel has no memory cgroup (/sys/fs/cgroup/cgroup.controllers: $(cat "$root/sys/fs/cgroup/cgroup.controllers" 2>/dev/null || echo missing)); check /boot/firmware/cmdline.txt")
fi
if (($(wc -l <"$root/proc/swaps") > 1)); then
  problems+=("swap is still active: $(tail -n +2 "$root/proc/swaps" | awk '{print $1}' | paste -sd, -)")
fi
model="$(tr -d '\0' <"$root/proc/device-tree/model" 2>/dev/null || true)"
pages="$(getconf PAGESIZE)"
if [[ "$model" == "Raspberry Pi 5"* || "$model" == "Raspberry Pi Compute Module 5"* ]] && [[ "$pages" != 4096 ]]; then
  problems+=("it runs a ${pages}-byte page kernel; /boot/firmware/config.txt must load kernel8.img")
fi

if ((${#problems[@]})); then
  printf 'error: node %s is not ready for K3s:\n' "$node" >&2
  printf '  - %s\n' "${problems[@]}" >&2
  exit 1
fi
echo "ready: node $node boot $boot, memory cgroup on, swap off, ${pages}-byte pages"
