#!/usr/bin/env bash
# Runs when a node leaves settings (a command's delete step), in two places:
#   on the server (PI_CLUSTER_STEP=drain): drain the node and delete it from Kubernetes;
#   on the node itself (PI_CLUSTER_STEP=uninstall): run the K3s uninstall script, but only when
#   settings allowed it (PI_CLUSTER_ALLOW=yes); otherwise K3s stays on the host.
# Parameters (environment):
#   PI_CLUSTER_STEP           drain or uninstall
#   PI_CLUSTER_NODE           Kubernetes node name
#   PI_CLUSTER_ALLOW          uninstall only: yes to uninstall, anything else to leave K3s alone
#   PI_CLUSTER_UNINSTALLER    uninstall only: k3s-agent-uninstall.sh or k3s-uninstall.sh
#   PI_CLUSTER_WAIT_SECONDS   drain timeout (default 180)
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_STEP:?PI_CLUSTER_STEP is required}"
: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
root="${PI_CLUSTER_ROOT:-}"
node="$PI_CLUSTER_NODE"
case "$PI_CLUSTER_STEP" in
  drain)
    if ! sudo kubectl get node "$node" -o name >/dev/null 2>&1; then
      echo "node $node: not in the cluster, nothing to drain"
      exit 0
    fi
    sudo kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data \
      --timeout="${PI_CLUSTER_WAIT_SECONDS:-180}s"
    sudo kubectl delete node "$node"
    echo "node $node: drained and deleted"
    ;;
  uninstall)
    : "${PI_CLUSTER_UNINSTALLER:?PI_CLUSTER_UNINSTALLER is required}"
    case "$PI_CLUSTER_UNINSTALLER" in
      k3s-agent-uninstall.sh | k3s-uninstall.sh) ;;
      *)
        echo "error: unknown uninstaller '$PI_CLUSTER_UNINSTALLER'" >&2
        exit 1
        ;;
    esac
    uninstaller="$root/usr/local/bin/$PI_CLUSTER_UNINSTALLER"
    if [[ "${PI_CLUSTER_ALLOW:-no}" != yes ]]; then
      echo "node $node: K3s left installed (settings do not allow uninstalling)"
    elif [[ -x "$uninstaller" ]]; then
      sudo "$uninstaller"
      sudo rm -f "$root/var/lib/pi-cluster/k3s-join"
      echo "node $node: K3s uninstalled"
    else
      echo "node $node: K3s is not installed"
    fi
    ;;
  *)
    echo "error: PI_CLUSTER_STEP must be drain or uninstall, got '$PI_CLUSTER_STEP'" >&2
    exit 1
    ;;
esac
