#!/usr/bin/env bash
# Install K3s at the pinned version on a server or an agent, or bring an existing install in
# line, touching only what differs:
#   - config.yaml is rewritten only when its bytes differ (cmp against the wanted file);
#   - the installer (install.sh of the release, checked against its sha256) runs only when the
#     version, or for an agent the server it joins or the join token, differs; never to go back
#     to a lower version (K3s does not support downgrades);
#   - on a server, a change of cluster-cidr or service-cidr after install is refused (K3s cannot
#     renumber a running cluster);
#   - the unit is (re)started by this script, not by the installer (INSTALL_K3S_SKIP_START=true):
#     k3s.service and k3s-agent.service are Type=notify with TimeoutStartSec=0 (k3s-io/k3s
#     install.sh, the file the program downloads at v1.33.6+k3s1, pinned by installerSha256:
#     create_systemd_service_file; read from a stored copy of install.sh at k3s-io/k3s commit
#     0136cf25, not from the tag itself), so a blocking start never ends when an agent
#     cannot register; here it is cut off after PI_CLUSTER_START_SECONDS, and the unit's journal
#     is printed before failing. A rerun with unchanged inputs starts or restarts nothing.
# Waits (bounded) until the server's kubeconfig and join token exist. Never prints the token.
# Parameters (environment):
#   PI_CLUSTER_NODE              node name (for messages)
#   PI_CLUSTER_ROLE              server or agent
#   INSTALL_K3S_VERSION          e.g. v1.33.6+k3s1 (read by the installer too)
#   PI_CLUSTER_K3S_CONFIG        content of /etc/rancher/k3s/config.yaml
#   PI_CLUSTER_INSTALLER_URL     the release's install.sh
#   PI_CLUSTER_INSTALLER_SHA256  its sha256
#   PI_CLUSTER_START_SECONDS     bound on starting the unit (default 300)
#   PI_CLUSTER_WAIT_SECONDS      bound on waiting for the server's files (default 180)
#   K3S_URL, K3S_TOKEN           agent only: the server to join and its token (read by the installer)
# PI_CLUSTER_ROOT prefixes every path: empty on a host, a fake root in tests.
set -euo pipefail

: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
: "${PI_CLUSTER_ROLE:?PI_CLUSTER_ROLE is required}"
: "${INSTALL_K3S_VERSION:?INSTALL_K3S_VERSION is required}"
: "${PI_CLUSTER_K3S_CONFIG:?PI_CLUSTER_K3S_CONFIG is required}"
: "${PI_CLUSTER_INSTALLER_URL:?PI_CLUSTER_INSTALLER_URL is required}"
: "${PI_CLUSTER_INSTALLER_SHA256:?PI_CLUSTER_INSTALLER_SHA256 is required}"
root="${PI_CLUSTER_ROOT:-}"
node="$PI_CLUSTER_NODE"
version="$INSTALL_K3S_VERSION"
start_seconds="${PI_CLUSTER_START_SECONDS:-300}"
wait_seconds="${PI_CLUSTER_WAIT_SECONDS:-180}"
# The installer starts nothing (k3s-io/k3s install.sh, the file the program downloads at
# v1.33.6+k3s1, pinned by installerSha256, service_enable_and_start:
# `[ "${INSTALL_K3S_SKIP_START}" = true ] && return`; read from the same stored copy, commit
# 0136cf25, not from the tag itself).
export INSTALL_K3S_SKIP_START=true
preserve=INSTALL_K3S_VERSION,INSTALL_K3S_SKIP_START
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
    preserve+=,K3S_URL,K3S_TOKEN
    ;;
  *)
    echo "error: PI_CLUSTER_ROLE must be server or agent, got '$PI_CLUSTER_ROLE'" >&2
    exit 1
    ;;
esac

tmp="$(mktemp -d)" # 0700: what is staged here (config, join marker, installer) stays private
trap 'rm -rf "$tmp"' EXIT
config="$root/etc/rancher/k3s/config.yaml"
marker="$root/var/lib/pi-cluster/k3s-join"
printf '%s' "$PI_CLUSTER_K3S_CONFIG" >"$tmp/config.yaml" # the exact bytes the program rendered
printf '%s\n' "$join" >"$tmp/join"

installed=""
if command -v k3s >/dev/null 2>&1; then
  # First line "k3s version v1.33.6+k3s1 (<commit>)": k3s-io/k3s pkg/cli/cmds/root.go NewApp
  # (cli.VersionPrinter prints "%s version %s" with app.Version "<version> (<commit>)"), read in
  # a stored copy at commit e7f7db48, older than v1.33.6+k3s1.
  installed="$(k3s --version | awk 'NR == 1 {print $3}')"
fi
if [[ -n "$installed" && "$installed" != "$version" ]] &&
  [[ "$(printf '%s\n%s\n' "$installed" "$version" | sort -V | tail -n 1)" == "$installed" ]]; then
  echo "error: node $node runs K3s $installed, newer than k3s.version $version; K3s does not support downgrades" >&2
  exit 1
fi

# A server's networks are fixed once it runs: refuse to rewrite them under it.
if [[ "$PI_CLUSTER_ROLE" == server && -n "$installed" ]] && sudo test -f "$config"; then
  for key in cluster-cidr service-cidr; do
    have="$(sudo sed -n "s/^$key: //p" "$config")"
    want="$(sed -n "s/^$key: //p" "$tmp/config.yaml")"
    if [[ "$have" != "$want" ]]; then
      echo "error: node $node: refusing to change $key from ${have:-the default} to ${want:-the default} on an installed server; K3s cannot change its cluster networks (set k3s.${key%%-*}Cidr back, or rebuild the cluster)" >&2
      exit 1
    fi
  done
fi

config_changed=no
if ! sudo cmp -s "$tmp/config.yaml" "$config" 2>/dev/null; then
  sudo install -D -m 0600 "$tmp/config.yaml" "$config"
  config_changed=yes
fi

# Start or restart the unit, bounded; on failure show its journal and name the node.
run_unit() {
  local verb="$1" rc=0
  sudo timeout "$start_seconds" systemctl "$verb" "$service" || rc=$?
  if ((rc != 0)); then
    echo "--- journalctl -u $service (last 50 lines) ---" >&2
    sudo journalctl -u "$service" -n 50 --no-pager >&2 || true
    if ((rc == 124)); then
      echo "error: node $node: $service did not become active within ${start_seconds}s (k3s.startTimeoutSeconds); see its journal above" >&2
    else
      echo "error: node $node: systemctl $verb $service failed (exit $rc); see its journal above" >&2
    fi
    exit 1
  fi
}

if [[ "$installed" != "$version" ]] || ! sudo cmp -s "$tmp/join" "$marker" 2>/dev/null; then
  # Bounded retries: a few attempts, each with its own time limit.
  curl -fsSL --retry 5 --retry-delay 2 --retry-connrefused --connect-timeout 10 --max-time 120 \
    "$PI_CLUSTER_INSTALLER_URL" -o "$tmp/install.sh"
  digest="$(sha256sum "$tmp/install.sh" | cut -d' ' -f1)"
  if [[ "$digest" != "$PI_CLUSTER_INSTALLER_SHA256" ]]; then
    echo "error: node $node: $PI_CLUSTER_INSTALLER_URL has sha256 $digest, not $PI_CLUSTER_INSTALLER_SHA256 (k3s.installerSha256); not running it" >&2
    exit 1
  fi
  sudo --preserve-env="$preserve" sh "$tmp/install.sh" "$PI_CLUSTER_ROLE"
  sudo install -D -m 0600 "$tmp/join" "$marker"
  run_unit restart
  action="installed $version (was ${installed:-none})"
elif [[ "$config_changed" == yes ]]; then
  run_unit restart
  action="restarted for a new config.yaml"
elif ! systemctl is-active --quiet "$service"; then
  run_unit start
  action="started"
else
  action="unchanged"
fi

if [[ "$PI_CLUSTER_ROLE" == server ]]; then
  for file in "$root/etc/rancher/k3s/k3s.yaml" "$root/var/lib/rancher/k3s/server/node-token"; do
    waited=0
    until sudo test -s "$file"; do
      if ((waited >= wait_seconds)); then
        echo "error: node $node: $file did not appear within ${wait_seconds}s; see journalctl -u $service" >&2
        exit 1
      fi
      sleep 2
      waited=$((waited + 2))
    done
  done
fi
echo "k3s $PI_CLUSTER_ROLE $version on $node: $action"
