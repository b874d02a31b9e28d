#!/usr/bin/env bash
# Install (or upgrade to) the pinned K3s server version; do nothing when it already runs.
# Parameters come from the environment: INSTALL_K3S_VERSION, K3S_CONFIG (config.yaml content).
set -euo pipefail

: "${INSTALL_K3S_VERSION:?INSTALL_K3S_VERSION is required}"
: "${K3S_CONFIG:?K3S_CONFIG is required}"

config_dir="${ROOT_DIR:-}/etc/rancher/k3s"
sudo mkdir -p "$config_dir"
current_config=""
if [ -f "$config_dir/config.yaml" ]; then
  current_config=$(sudo cat "$config_dir/config.yaml")
fi
config_changed=no
if [ "$current_config" != "$K3S_CONFIG" ]; then
  printf '%s\n' "$K3S_CONFIG" | sudo tee "$config_dir/config.yaml" >/dev/null
  config_changed=yes
fi

installed=""
if command -v k3s >/dev/null 2>&1; then
  installed=$(k3s --version | awk 'NR==1 {print $3}')
fi

if [ "$installed" != "$INSTALL_K3S_VERSION" ]; then
  curl -sfL https://get.k3s.io | sudo INSTALL_K3S_VERSION="$INSTALL_K3S_VERSION" sh -s - server
elif [ "$config_changed" = yes ]; then
  sudo systemctl restart k3s
fi
echo "k3s server ${INSTALL_K3S_VERSION} ready"
