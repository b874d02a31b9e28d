#!/usr/bin/env bash
# Static DNS that never depends on Pi-hole (ARCHITECTURE.md, "DNS Resilience"): the
# NetworkManager connection of the node's wired device gets fixed IPv4 resolvers and ignores the
# ones DHCP and IPv6 router advertisements hand out. Changes nothing when the connection already
# has them; applies a change to the running device with `nmcli device reapply` (keeps the SSH
# session) instead of taking the link down. Mode auto hands DNS back to DHCP, but only on a node
# this script made static (a marker records it), so a node that never had staticDns keeps its own.
# The connection is the one active on the device: Bookworm images call it "Wired connection 1",
# Trixie images (cloud-init + netplan) "netplan-eth0": netplan's NetworkManager renderer names
# the profile "netplan-<id>" after the network config's key for the device (canonical/netplan
# tag 1.1.2 src/nm.c, g_strdup_printf("netplan-%s", def->id)); that the key is eth0 on these
# images is observed, not read at a source.
# Parameters (environment):
#   PI_CLUSTER_NODE           node name (for messages)
#   PI_CLUSTER_NM_DEVICE      network device, e.g. eth0
#   PI_CLUSTER_NM_CONNECTION  connection name; empty: the one active on the device
#   PI_CLUSTER_DNS_SERVERS    space-separated IPv4 resolver addresses, e.g. "1.1.1.1 8.8.8.8"
#   PI_CLUSTER_DNS_MODE       static or auto
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
: "${PI_CLUSTER_NM_DEVICE:?PI_CLUSTER_NM_DEVICE is required}"
: "${PI_CLUSTER_DNS_MODE:?PI_CLUSTER_DNS_MODE is required}"
root="${PI_CLUSTER_ROOT:-}"
node="$PI_CLUSTER_NODE"
device="$PI_CLUSTER_NM_DEVICE"
mode="$PI_CLUSTER_DNS_MODE"
marker="$root/var/lib/pi-cluster/dns-static"

conn="${PI_CLUSTER_NM_CONNECTION:-}"
if [[ -z "$conn" ]]; then
  conn="$(nmcli -g GENERAL.CONNECTION device show "$device" 2>/dev/null || true)"
  if [[ -z "$conn" ]]; then
    echo "error: node $node: device $device has no active NetworkManager connection; devices here:" >&2
    nmcli -g DEVICE,STATE,CONNECTION device status >&2 || true
    exit 1
  fi
fi
if ! nmcli -g NAME connection show "$conn" >/dev/null 2>&1; then
  echo "error: node $node: no NetworkManager connection '$conn'; connections here:" >&2
  nmcli -g NAME connection show >&2 || true
  exit 1
fi

case "$mode" in
  static)
    : "${PI_CLUSTER_DNS_SERVERS:?PI_CLUSTER_DNS_SERVERS is required}"
    read -r -a servers <<<"$PI_CLUSTER_DNS_SERVERS"
    want=("ipv4.dns" "$(IFS=,; echo "${servers[*]}")" "ipv4.ignore-auto-dns" yes
      "ipv6.dns" "" "ipv6.ignore-auto-dns" yes)
    ;;
  auto)
    if ! sudo test -f "$marker"; then
      echo "dns: '$conn' left as it is (pi-cluster never set it)"
      exit 0
    fi
    want=("ipv4.dns" "" "ipv4.ignore-auto-dns" no "ipv6.dns" "" "ipv6.ignore-auto-dns" no)
    ;;
  *)
    echo "error: PI_CLUSTER_DNS_MODE must be static or auto, got '$mode'" >&2
    exit 1
    ;;
esac

modify=()
for ((i = 0; i < ${#want[@]}; i += 2)); do
  if [[ "$(nmcli -g "${want[i]}" connection show "$conn")" != "${want[i + 1]}" ]]; then
    modify+=("${want[i]}" "${want[i + 1]}")
  fi
done
if ((${#modify[@]})); then
  sudo nmcli connection modify "$conn" "${modify[@]}"
  active="$(nmcli -g GENERAL.DEVICES connection show "$conn")"
  if [[ -n "$active" ]]; then
    sudo nmcli device reapply "$active"
  fi
fi
if [[ "$mode" == static ]]; then
  if ! sudo test -f "$marker"; then
    sudo mkdir -p "$(dirname "$marker")"
    printf '%s\n' "$conn" | sudo tee "$marker" >/dev/null
  fi
  if ((${#modify[@]})); then
    echo "dns: '$conn' set to ${want[1]} (DHCP and IPv6 resolvers ignored)"
  else
    echo "dns: '$conn' unchanged (${want[1]})"
  fi
else
  sudo rm -f "$marker"
  echo "dns: '$conn' back to the resolvers DHCP hands out"
fi
