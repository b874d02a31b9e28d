#!/usr/bin/env bash
# Prepare a Raspberry Pi OS host for K3s, changing only what is not already right:
#   - sshd accepts the parameters later commands send through their environment (AcceptEnv);
#   - the memory cgroup is on the kernel command line (cgroup_memory=1 cgroup_enable=memory);
#   - swap is off now and stays off (swapfile, dphys-swapfile, zram units masked, fstab swap
#     lines commented out).
# Reboots only when the running kernel lacks the cgroup arguments. The reboot is scheduled a
# few seconds out and sshd stops taking new connections right away (Debian's ssh.service keeps
# running sessions), so this command returns cleanly and the next one waits for the reboot.
# No parameters. PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

root="${PI_CLUSTER_ROOT:-}"
cgroup_args=(cgroup_memory=1 cgroup_enable=memory)
accept_env="AcceptEnv PI_CLUSTER_* INSTALL_K3S_VERSION K3S_URL K3S_TOKEN"
sshd_dropin="$root/etc/ssh/sshd_config.d/50-pi-cluster.conf"
swap_units=(dphys-swapfile.service zramswap.service systemd-zram-setup@zram0.service)
changes=()

# sshd: accept the parameter variables.
if [[ "$(cat "$sshd_dropin" 2>/dev/null || true)" != "$accept_env" ]]; then
  sudo mkdir -p "$(dirname "$sshd_dropin")"
  printf '%s\n' "$accept_env" | sudo tee "$sshd_dropin" >/dev/null
  sudo systemctl reload ssh.service
  changes+=(sshd-accept-env)
fi

# Kernel command line (one line; Bookworm keeps it in /boot/firmware, older releases in /boot).
cmdline="$root/boot/firmware/cmdline.txt"
if [[ ! -f "$cmdline" && -f "$root/boot/cmdline.txt" ]]; then
  cmdline="$root/boot/cmdline.txt"
fi
if [[ ! -f "$cmdline" ]]; then
  echo "error: no kernel command line at $cmdline" >&2
  exit 1
fi
line="$(head -n 1 "$cmdline")"
missing=()
for arg in "${cgroup_args[@]}"; do
  [[ " $line " == *" $arg "* ]] || missing+=("$arg")
done
if ((${#missing[@]})); then
  [[ -f "$cmdline.pi-cluster.orig" ]] || sudo cp "$cmdline" "$cmdline.pi-cluster.orig"
  printf '%s %s\n' "$line" "${missing[*]}" | sudo tee "$cmdline" >/dev/null
  changes+=("cmdline:+${missing[*]// /,+}")
fi
running="$(cat "$root/proc/cmdline")"
reboot=no
for arg in "${cgroup_args[@]}"; do
  [[ " $running " == *" $arg "* ]] || reboot=yes
done

# Swap: units that would bring it back, fstab entries, then whatever is active now.
for unit in "${swap_units[@]}"; do
  state="$(systemctl is-enabled "$unit" 2>/dev/null || true)"
  if [[ -n "$state" && "$state" != masked ]]; then
    sudo systemctl mask --now "$unit"
    changes+=("masked:$unit")
  fi
done
fstab="$root/etc/fstab"
if [[ -f "$fstab" ]] && grep -Eq '^[^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]]' "$fstab"; then
  sudo sed -i -E 's/^([^#[:space:]]+[[:space:]]+[^[:space:]]+[[:space:]]+swap[[:space:]])/# pi-cluster: swap off # \1/' "$fstab"
  changes+=(fstab-swap)
fi
if (($(wc -l <"$root/proc/swaps") > 1)); then
  sudo swapoff -a
  changes+=(swapoff)
fi

echo "changes=${changes[*]:-none}"
if [[ "$reboot" == yes ]]; then
  sudo systemd-run --on-active=5 --unit=pi-cluster-reboot systemctl reboot
  sudo systemctl stop ssh.service
fi
echo "reboot=$reboot"
