#!/usr/bin/env bash
# Prepare a Raspberry Pi OS host (Bookworm or Trixie images) for K3s, changing only what is not
# already right. The first command on a node, so it takes no parameters (sshd does not accept
# them yet):
#   - sudo works without a password (everything else runs through it);
#   - sshd accepts the parameters later commands send through their environment (AcceptEnv);
#   - the running kernel has the memory cgroup: /sys/fs/cgroup/cgroup.controllers lists it
#     (6.12 kernels, built without CONFIG_MEMCG_V1, no longer list it in /proc/cgroups); if not,
#     cmdline.txt gets cgroup_enable=memory and cgroup_memory=1, and the node reboots. The
#     Raspberry Pi kernel has the memory cgroup but its device tree turns it off
#     (cgroup_disable=memory ahead of cmdline.txt); cgroup_enable=memory in cmdline.txt turns it
#     back on and is all that is needed (raspberrypi/linux issue #6980, the kernel maintainers'
#     answer). cgroup_memory=1 is added too because K3s's own installer asks for both (its
#     service_enable_and_start prints 'you may need to add "cgroup_memory=1
#     cgroup_enable=memory"'; the copy of install.sh read is named below), though #6980 says it
#     is not needed. Kernels of the images: 6.12.25 to 6.12.93 (Bookworm), 6.12.75 (Trixie
#     2026-04-13), 6.18.34 (Trixie 2026-06-18) (RPi-Distro/pi-gen
#     export-noobs/00-release/files/release_notes.txt at tags 2026-06-18-raspios-bookworm-arm64
#     and 2026-06-18-raspios-trixie-arm64);
#   - a Pi 5 boots the 4K-page kernel8.img instead of kernel_2712.img (16K pages, which
#     jemalloc-based images such as Immich's Valkey do not survive): kernel=kernel8.img in
#     /boot/firmware/config.txt, reboot only while the running kernel still has 16K pages;
#   - swap is off now and stays off: Trixie's rpi-swap gets Mechanism=none in
#     /etc/rpi/swap.conf.d/, Bookworm's dphys-swapfile (and zram-tools) are masked, fstab swap
#     lines are commented out, active swap is turned off.
# Prints changes=..., boot_id=<this boot> and reboot=yes|no; node-wait.sh reads them. A reboot is
# scheduled a few seconds out and sshd stops taking new connections right away; the sessions it
# runs, this one included, go on (KillMode=process in Debian's ssh.service:
# /lib/systemd/system/ssh.service of openssh-server 1:9.2p1-2+deb12u10, Bookworm; Trixie's
# package was not read), so this command returns cleanly and the next one waits.
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

root="${PI_CLUSTER_ROOT:-}"
user="$(id -un)"

# sudo: Raspberry Pi OS no longer grants it without a password (RPi-Distro/pi-gen c020178c,
# "raspberrypi-sys-mods no longer ships 010_pi-nopasswd"; release notes 2026-04-13 "Passwordless
# sudo now disabled by default"; raspberrypi/rpi-imager v2.0.11 writes `sudo: null` for the user
# unless "Enable passwordless sudo" is ticked).
# The advice is the program's (components/cluster.py SUDO_HELP, written in by script()).
sudo_help=@PI_CLUSTER_SUDO_HELP@
if ! sudo -n true 2>/dev/null; then
  printf 'error: %s: user %s cannot run sudo without a password, and every bootstrap step needs it.\n%s\n' \
    "$(hostname)" "$user" "$sudo_help" >&2
  exit 1
fi

changes=()
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# Install $2 (a file) as $1 only when the bytes differ; returns 0 when it changed the host.
put() {
  local dest="$1" src="$2"
  if sudo cmp -s "$src" "$dest" 2>/dev/null; then
    return 1
  fi
  sudo install -D -m 0644 "$src" "$dest"
}

# sshd: accept the parameter variables (pulumi-command sends `environment` with session.Setenv:
# pulumi/pulumi-command v1.2.1 provider/pkg/provider/remote/commandOutputs.go).
printf '%s\n' "AcceptEnv PI_CLUSTER_* INSTALL_K3S_VERSION K3S_URL K3S_TOKEN" >"$tmp/sshd"
if put "$root/etc/ssh/sshd_config.d/50-pi-cluster.conf" "$tmp/sshd"; then
  sudo systemctl reload ssh.service
  changes+=(sshd-accept-env)
fi

reboot=no

# Memory cgroup: what the running kernel offers decides (k3s-io/k3s install.sh, the file the
# program downloads at v1.33.6+k3s1, pinned by installerSha256: service_enable_and_start checks
# /sys/fs/cgroup/cgroup.controllers first, /proc/cgroups only as a fallback; read from a stored
# copy of install.sh at k3s-io/k3s commit 0136cf25, not from the tag itself).
if ! grep -qw memory "$root/sys/fs/cgroup/cgroup.controllers" 2>/dev/null; then
  cmdline="$root/boot/firmware/cmdline.txt"
  if [[ ! -f "$cmdline" ]]; then
    echo "error: $(hostname): no kernel command line at $cmdline" >&2
    exit 1
  fi
  line="$(head -n 1 "$cmdline")"
  missing=()
  for arg in cgroup_memory=1 cgroup_enable=memory; do
    [[ " $line " == *" $arg "* ]] || missing+=("$arg")
  done
  if ((${#missing[@]})); then
    [[ -f "$cmdline.pi-cluster.orig" ]] || sudo cp "$cmdline" "$cmdline.pi-cluster.orig"
    printf '%s %s\n' "$line" "${missing[*]}" >"$tmp/cmdline"
    sudo cp "$tmp/cmdline" "$cmdline" # FAT: cp, not install -m
    changes+=("cmdline:+${missing[*]// /,+}")
  fi
  reboot=yes
fi

# Pi 5: the 4K-page kernel. The firmware loads kernel_2712.img (16K pages) on a Pi 5 unless
# config.txt names another kernel (raspberrypi rpi-image-gen, layer rpi5: "installs the 2712
# kernel which has a 16kB page size ... you may require running the v8 kernel (kernel8)").
model="$(tr -d '\0' <"$root/proc/device-tree/model" 2>/dev/null || true)"
if [[ "$model" == "Raspberry Pi 5"* || "$model" == "Raspberry Pi Compute Module 5"* ]]; then
  config="$root/boot/firmware/config.txt"
  marker="# pi-cluster: 4K pages (jemalloc images such as Valkey fail on kernel_2712.img)"
  if ! grep -qxF "$marker" "$config" 2>/dev/null; then
    { cat "$config" 2>/dev/null || true; printf '\n%s\n[all]\nkernel=kernel8.img\n' "$marker"; } >"$tmp/config"
    sudo cp "$tmp/config" "$config"
    changes+=(config:kernel8.img)
  fi
  if [[ "$(getconf PAGESIZE)" != 4096 ]]; then
    reboot=yes
  fi
fi

# Swap. Trixie: rpi-swap's generator reads /etc/rpi/swap.conf and drop-ins in
# /etc/rpi/swap.conf.d/*.conf, the last file in lexical order winning; Mechanism=none configures
# no swap and removes the swap file (raspberrypi/rpi-swap 1.2.1 man/man5/swap.conf.5,
# lib/systemd/system-generators/rpi-swap-generator). daemon-reload reruns the generator.
if [[ -f "$root/etc/rpi/swap.conf" ]]; then
  printf '[Main]\nMechanism=none\n' >"$tmp/swap"
  if put "$root/etc/rpi/swap.conf.d/99-pi-cluster-no-swap.conf" "$tmp/swap"; then
    sudo systemctl daemon-reload
    changes+=(rpi-swap:none)
  fi
fi
# Bookworm: dphys-swapfile (RPi-Distro/pi-gen bookworm stage2/01-sys-tweaks/00-packages), and
# zram-tools where someone installed it.
for unit in dphys-swapfile.service zramswap.service; do
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
echo "boot_id=$(cat "$root/proc/sys/kernel/random/boot_id")"
if [[ "$reboot" == yes ]]; then
  sudo systemd-run --on-active=5 --unit=pi-cluster-reboot systemctl reboot
  sudo systemctl stop ssh.service
fi
echo "reboot=$reboot"
