#!/usr/bin/env bash
# Runs when a node leaves settings or its host is replaced (a command's delete step), in two places:
#   on the server (PI_CLUSTER_STEP=drain): remove the node from Kubernetes without reaching it. A
#     Ready node is drained (bounded by PI_CLUSTER_WAIT_SECONDS) and deleted; a NotReady one
#     cannot evict anything, so its pods are force-deleted and the node deleted right away;
#   on the node itself (PI_CLUSTER_STEP=uninstall): run the K3s uninstall script, but only when
#     settings allowed it (PI_CLUSTER_ALLOW=yes); otherwise K3s stays on the host.
# Both first check they run where they were last applied: the host's /etc/machine-id must be
# PI_CLUSTER_HOST_ID (another one means a new card answers on the address, which this command
# never set up: nothing to undo there), and the drain only touches a node whose machine ID
# (status.nodeInfo.machineID, the agent's /etc/machine-id) is PI_CLUSTER_NODE_ID.
# Parameters (environment):
#   PI_CLUSTER_STEP           drain or uninstall
#   PI_CLUSTER_NODE           Kubernetes node name
#   PI_CLUSTER_HOST_ID        machine-id of the host this runs on, when the command was created
#   PI_CLUSTER_NODE_ID        drain only: machine-id of the node to remove
#   PI_CLUSTER_ALLOW          uninstall only: yes to uninstall, anything else to leave K3s alone
#   PI_CLUSTER_UNINSTALLER    uninstall only: k3s-agent-uninstall.sh or k3s-uninstall.sh
#   PI_CLUSTER_WAIT_SECONDS   drain timeout (default 180)
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_STEP:?PI_CLUSTER_STEP is required}"
: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
: "${PI_CLUSTER_HOST_ID:?PI_CLUSTER_HOST_ID is required}"
root="${PI_CLUSTER_ROOT:-}"
node="$PI_CLUSTER_NODE"
here="$(cat "$root/etc/machine-id")"
if [[ "$here" != "$PI_CLUSTER_HOST_ID" ]]; then
  echo "node $node: $(hostname) is another host now (machine-id $here, not $PI_CLUSTER_HOST_ID); nothing to undo here"
  exit 0
fi

case "$PI_CLUSTER_STEP" in
  drain)
    : "${PI_CLUSTER_NODE_ID:?PI_CLUSTER_NODE_ID is required}"
    wait_seconds="${PI_CLUSTER_WAIT_SECONDS:-180}"
    if ! sudo kubectl get node "$node" -o name >/dev/null 2>&1; then
      echo "node $node: not in the cluster, nothing to drain"
      exit 0
    fi
    id="$(sudo kubectl get node "$node" -o jsonpath='{.status.nodeInfo.machineID}')"
    if [[ "$id" != "$PI_CLUSTER_NODE_ID" ]]; then
      echo "node $node: now machine $id (a new card joined under this name); left in the cluster"
      exit 0
    fi
    ready="$(sudo kubectl get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')"
    if [[ "$ready" == True ]]; then
      if ! sudo kubectl drain "$node" --ignore-daemonsets --delete-emptydir-data \
        --timeout="${wait_seconds}s"; then
        echo "error: node $node did not drain within ${wait_seconds}s (k3s.drainTimeoutSeconds): a PodDisruptionBudget or a pod that will not stop; it stays cordoned" >&2
        exit 1
      fi
      sudo kubectl delete node "$node" --timeout="${wait_seconds}s"
      echo "node $node: drained and deleted"
    else
      # The kubelet is gone: eviction would wait for it forever. Delete the pods bound to the
      # node without waiting for it to confirm, then the node.
      sudo kubectl delete pods --all-namespaces --field-selector "spec.nodeName=$node" \
        --force --grace-period=0 --timeout="${wait_seconds}s"
      sudo kubectl delete node "$node" --timeout="${wait_seconds}s"
      echo "node $node: not ready (${ready:-unknown}); its pods force-deleted and the node deleted"
    fi
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
