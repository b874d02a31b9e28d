#!/usr/bin/env bash
# Make a node's labels and taints match settings, from the server with kubectl. Sets only what
# differs (with --overwrite), and removes labels and taints this script set before that are no
# longer in settings. Which keys it manages is recorded on the node itself in the annotations
# pi-cluster/managed-labels and pi-cluster/managed-taints, so labels others set are left alone.
# Parameters (environment):
#   PI_CLUSTER_NODE           Kubernetes node name
#   PI_CLUSTER_LABELS         one key=value per line (may be empty)
#   PI_CLUSTER_TAINTS         one key=value:Effect (key:Effect without a value) per line (may be empty)
#   PI_CLUSTER_WAIT_SECONDS   bound on waiting for the node to register (default 180)
set -euo pipefail

: "${PI_CLUSTER_NODE:?PI_CLUSTER_NODE is required}"
node="$PI_CLUSTER_NODE"
wait_seconds="${PI_CLUSTER_WAIT_SECONDS:-180}"
kube() { sudo kubectl "$@"; }
lines() { [[ -z "$1" ]] || printf '%s\n' "$1"; }
contains() {
  local needle="$1" item
  shift
  for item in "$@"; do [[ "$item" == "$needle" ]] && return 0; done
  return 1
}

waited=0
until kube get node "$node" -o name >/dev/null 2>&1; do
  if ((waited >= wait_seconds)); then
    echo "error: node $node did not register within ${wait_seconds}s" >&2
    exit 1
  fi
  sleep 2
  waited=$((waited + 2))
done

mapfile -t want_labels < <(lines "${PI_CLUSTER_LABELS:-}")
mapfile -t want_taints < <(lines "${PI_CLUSTER_TAINTS:-}")
# shellcheck disable=SC2016 # go-template variables, not shell expansions
mapfile -t have_labels < <(kube get node "$node" \
  -o go-template='{{range $k, $v := .metadata.labels}}{{$k}}={{$v}}{{"\n"}}{{end}}')
# A taint without a value has no `value` field: {{.value}} would print "<no value>", so the
# value (and its "=") is printed only when there is one, the form node_taints() renders.
mapfile -t have_taints < <(kube get node "$node" \
  -o go-template='{{range .spec.taints}}{{.key}}{{with .value}}={{.}}{{end}}:{{.effect}}{{"\n"}}{{end}}')
IFS=, read -r -a managed_labels <<<"$(kube get node "$node" \
  -o jsonpath='{.metadata.annotations.pi-cluster/managed-labels}')"
IFS=, read -r -a managed_taints <<<"$(kube get node "$node" \
  -o jsonpath='{.metadata.annotations.pi-cluster/managed-taints}')"

# Labels: set what differs, remove managed keys dropped from settings.
label_args=()
want_keys=()
for pair in "${want_labels[@]}"; do
  want_keys+=("${pair%%=*}")
  contains "$pair" "${have_labels[@]}" || label_args+=("$pair")
done
have_keys=()
for pair in "${have_labels[@]}"; do have_keys+=("${pair%%=*}"); done
for key in "${managed_labels[@]}"; do
  if ! contains "$key" "${want_keys[@]}" && contains "$key" "${have_keys[@]}"; then
    label_args+=("$key-")
  fi
done
if ((${#label_args[@]})); then
  kube label node "$node" --overwrite "${label_args[@]}"
fi

# Taints: add or re-value what differs, remove managed key:Effect pairs dropped from settings.
want_ids=()
taint_id() { printf '%s:%s' "${1%%[=:]*}" "${1##*:}"; } # key:Effect
for taint in "${want_taints[@]}"; do
  want_ids+=("$(taint_id "$taint")")
  contains "$taint" "${have_taints[@]}" || kube taint node "$node" "$taint" --overwrite
done
have_ids=()
for taint in "${have_taints[@]}"; do have_ids+=("$(taint_id "$taint")"); done
for id in "${managed_taints[@]}"; do
  if ! contains "$id" "${want_ids[@]}" && contains "$id" "${have_ids[@]}"; then
    kube taint node "$node" "$id-"
  fi
done

# Record what is managed now, only when it changed.
new_labels="$(IFS=,; echo "${want_keys[*]}")"
new_taints="$(IFS=,; echo "${want_ids[*]}")"
old_labels="$(IFS=,; echo "${managed_labels[*]}")"
old_taints="$(IFS=,; echo "${managed_taints[*]}")"
if [[ "$new_labels" != "$old_labels" || "$new_taints" != "$old_taints" ]]; then
  kube annotate node "$node" --overwrite \
    "pi-cluster/managed-labels=$new_labels" "pi-cluster/managed-taints=$new_taints"
fi
echo "node $node: ${#label_args[@]} label change(s); labels [${new_labels}] taints [${new_taints}]"
