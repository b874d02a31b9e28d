#!/usr/bin/env bash
# Install K3s at the pinned version on a server or an agent, or bring an existing install in
# line: config.yaml written only when its content differs, the installer run only when the
# version (or, for an agent, the server it joins or the join token) differs, a restart only
# when just config.yaml changed. Waits (bounded) until the server's kubeconfig and join token
# exist. Never prints the token.
# Parameters (environment):
#   PI_CLUSTER_ROLE            server or agent
#   INSTALL_K3S_VERSION        e.g. v1.33.6+k3s1 (read by the installer too)
#   PI_CLUSTER_K3S_CONFIG      content of /etc/rancher/k3s/config.yaml
#   PI_CLUSTER_INSTALLER_URL   the K3s install script, e.g. https://get.k3s.io
#   PI_CLUSTER_WAIT_SECONDS    bound on waiting for the server's files (default 180)
#   K3S_URL, K3S_TOKEN         agent only: the server to join and its token (read by the installer)
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_ROLE:?PI_CLUSTER_ROLE is required}"
: "${INSTALL_K3S_VERSION:?INSTALL_K3S_VERSION is required}"
: "${PI_CLUSTER_K3S_CONFIG:?PI_CLUSTER_K3S_CONFIG is required}"
: "${PI_CLUSTER_INSTALLER_URL:?PI_CLUSTER_INSTALLER_URL is required}"
root="${PI_CLUSTER_ROOT:-}"
wait_seconds="${PI_CLUSTER_WAIT_SECONDS:-180}"
preserve=INSTALL_K3S_VERSION
case "$PI_CLUSTER_ROLE" in
  server)
    service=k3s
    join=""
    ;;
  agent)
    : "${K3S_URL:?K3S_URL is required for an agent}"
    : "${K3S_TOKEN:?K3S_TOKEN is required for an agent}"
    service=k3s-agent
    # What the agent joined, with the token as a digest: a new server or token means a rejoin.
    join="$K3S_URL $(printf '%s' "$K3S_TOKEN" | sha256sum | cut -d' ' -f1)"
    preserve=INSTALL_K3S_VERSION,K3S_URL,K3S_TOKEN
    ;;
  *)
    echo "error: PI_CLUSTER_ROLE must be server or agent, got '$PI_CLUSTER_ROLE'" >&2
    exit 1
    ;;
esac

config="$root/etc/rancher/k3s/config.yaml"
marker="$root/var/lib/pi-cluster/k3s-join"
config_changed=no
if [[ "$(sudo cat "$config" 2>/dev/null || true)" != "$PI_CLUSTER_K3S_CONFIG" ]]; then
  sudo mkdir -p "$(dirname "$config")"
  (umask 077 && printf '%s\n' "$PI_CLUSTER_K3S_CONFIG" | sudo tee "$config" >/dev/null)
  sudo chmod 0600 "$config"
  config_changed=yes
fi

installed=""
if command -v k3s >/dev/null 2>&1; then
  installed="$(k3s --version | awk 'NR == 1 {print $3}')"
fi
joined="$(sudo cat "$marker" 2>/dev/null || true)"

if [[ "$installed" != "$INSTALL_K3S_VERSION" || "$joined" != "$join" ]]; then
  installer="$(mktemp)"
  trap 'rm -f "$installer"' EXIT
  curl -sfL "$PI_CLUSTER_INSTALLER_URL" -o "$installer"
  sudo --preserve-env="$preserve" sh "$installer" "$PI_CLUSTER_ROLE"
  sudo mkdir -p "$(dirname "$marker")"
  printf '%s\n' "$join" | sudo tee "$marker" >/dev/null
  action="installed $INSTALL_K3S_VERSION (was ${installed:-none})"
elif [[ "$config_changed" == yes ]]; then
  sudo systemctl restart "$service"
  action="restarted for a new config.yaml"
elif ! systemctl is-active --quiet "$service"; then
  sudo systemctl start "$service"
  action="started"
else
  action="unchanged"
fi

if [[ "$PI_CLUSTER_ROLE" == server ]]; then
  for file in "$root/etc/rancher/k3s/k3s.yaml" "$root/var/lib/rancher/k3s/server/node-token"; do
    waited=0
    until sudo test -s "$file"; do
      if ((waited >= wait_seconds)); then
        echo "error: $file did not appear within ${wait_seconds}s; see journalctl -u $service" >&2
        exit 1
      fi
      sleep 2
      waited=$((waited + 2))
    done
  done
fi
echo "k3s $PI_CLUSTER_ROLE $INSTALL_K3S_VERSION: $action"
