#!/usr/bin/env bash
# Static DNS that never depends on Pi-hole (ARCHITECTURE.md, "DNS Resilience"): the
# NetworkManager connection gets fixed resolvers and ignores the ones DHCP hands out.
# Changes nothing when the connection already has them; applies a change to the running device
# with `nmcli device reapply` (keeps the SSH session) instead of taking the link down.
# Parameters (environment):
#   PI_CLUSTER_NM_CONNECTION  connection name, e.g. "Wired connection 1"
#   PI_CLUSTER_DNS_SERVERS    space-separated resolver addresses, e.g. "1.1.1.1 8.8.8.8"
#   PI_CLUSTER_DNS_MODE       static (default) or auto (back to DHCP-provided resolvers)
set -euo pipefail

: "${PI_CLUSTER_NM_CONNECTION:?PI_CLUSTER_NM_CONNECTION is required}"
conn="$PI_CLUSTER_NM_CONNECTION"
mode="${PI_CLUSTER_DNS_MODE:-static}"
case "$mode" in
  static)
    : "${PI_CLUSTER_DNS_SERVERS:?PI_CLUSTER_DNS_SERVERS is required}"
    read -r -a servers <<<"$PI_CLUSTER_DNS_SERVERS"
    want_dns="$(IFS=,; echo "${servers[*]}")"
    want_ignore=yes
    ;;
  auto)
    want_dns=""
    want_ignore=no
    ;;
  *)
    echo "error: PI_CLUSTER_DNS_MODE must be static or auto, got '$mode'" >&2
    exit 1
    ;;
esac

if ! nmcli -g NAME connection show "$conn" >/dev/null 2>&1; then
  echo "error: no NetworkManager connection '$conn'; connections here:" >&2
  nmcli -g NAME connection show >&2 || true
  exit 1
fi
have_dns="$(nmcli -g ipv4.dns connection show "$conn")"
have_ignore="$(nmcli -g ipv4.ignore-auto-dns connection show "$conn")"
if [[ "$have_dns" == "$want_dns" && "$have_ignore" == "$want_ignore" ]]; then
  echo "dns: '$conn' unchanged (${want_dns:-auto})"
  exit 0
fi

sudo nmcli connection modify "$conn" ipv4.dns "$want_dns" ipv4.ignore-auto-dns "$want_ignore"
device="$(nmcli -g GENERAL.DEVICES connection show "$conn")"
if [[ -n "$device" ]]; then
  sudo nmcli device reapply "$device"
fi
echo "dns: '$conn' set to ${want_dns:-auto} (ignore-auto-dns $want_ignore)"
