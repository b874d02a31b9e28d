#!/usr/bin/env bash
# Print one file the K3s server wrote (kubeconfig or join token) so the program can hold it as
# a secret. The calling command hides this output from logs and marks it secret.
# Parameters (environment):
#   PI_CLUSTER_FILE   kubeconfig or token
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_FILE:?PI_CLUSTER_FILE is required}"
root="${PI_CLUSTER_ROOT:-}"
case "$PI_CLUSTER_FILE" in
  kubeconfig) file="$root/etc/rancher/k3s/k3s.yaml" ;;
  token) file="$root/var/lib/rancher/k3s/server/node-token" ;;
  *)
    echo "error: PI_CLUSTER_FILE must be kubeconfig or token, got '$PI_CLUSTER_FILE'" >&2
    exit 1
    ;;
esac
if ! sudo test -s "$file"; then
  echo "error: $file is missing or empty; is the K3s server installed?" >&2
  exit 1
fi
sudo cat "$file"
