#!/usr/bin/env bash
# Make Pi-hole's block lists and exact allowlist match the data files, through the Pi-hole v6
# REST API: log in (POST /api/auth), add what is missing, delete what is no longer listed, run
# gravity when something changed, and always release the session (DELETE /api/auth).
# Runs in a Job (image pihole/pihole: bash, curl, jq). Exits non-zero on any failure.
#
# Environment:
#   PIHOLE_URL       base URL of the Pi-hole web server, e.g. http://192.168.1.55
#   PIHOLE_PASSWORD  admin password (from the pihole-secret Secret)
#   ADLISTS_FILE     block list URLs, one per line, '#' comments
#   ALLOWLIST_FILE   exact allowlisted domains, one per line, '#' comments
#   ATTEMPTS         tries per request on connection errors, timeouts, 429 and 5xx (default 5)
#   TIMEOUT          seconds per request (default 20)
#   GRAVITY_TIMEOUT  seconds for the gravity run (default 900)
#   RETRY_DELAY      seconds between tries (default 3)
set -euo pipefail

: "${PIHOLE_URL:?PIHOLE_URL is required (e.g. http://192.168.1.55)}"
: "${PIHOLE_PASSWORD:?PIHOLE_PASSWORD is required}"
: "${ADLISTS_FILE:?ADLISTS_FILE is required}"
: "${ALLOWLIST_FILE:?ALLOWLIST_FILE is required}"
ATTEMPTS="${ATTEMPTS:-5}"
TIMEOUT="${TIMEOUT:-20}"
GRAVITY_TIMEOUT="${GRAVITY_TIMEOUT:-900}"
RETRY_DELAY="${RETRY_DELAY:-3}"
COMMENT="managed by pi-cluster (config/adlists.txt, config/allowlist.txt)"

SID=""
STATUS=""
BODY=""

log() { printf '%s\n' "$*" >&2; }
fail() {
    log "ERROR: $*"
    exit 1
}

# api METHOD PATH [JSON] [MAX_TIME] [TRIES]: one API call; sets STATUS and BODY.
# Retries connection errors, timeouts, 429 and 5xx; returns 1 when every try failed that way.
api() {
    local method=$1 path=$2 data=${3:-} max_time=${4:-$TIMEOUT} tries=${5:-$ATTEMPTS}
    local attempt=1 out
    local -a args=(-sS -X "$method" --max-time "$max_time" -H "Accept: application/json" -w $'\n%{http_code}')
    if [[ -n $SID ]]; then
        args+=(-H "X-FTL-SID: $SID")
    fi
    if [[ -n $data ]]; then
        args+=(-H "Content-Type: application/json" --data-binary @-)
    fi
    while true; do
        if out=$(printf '%s' "$data" | curl "${args[@]}" "$PIHOLE_URL/api$path"); then
            STATUS=${out##*$'\n'}
            BODY=${out%$'\n'*}
            if [[ $STATUS != 5?? && $STATUS != 429 && $STATUS != 000 ]]; then
                return 0
            fi
            log "$method /api$path: HTTP $STATUS (try $attempt of $tries)"
        else
            log "$method /api$path: no answer from $PIHOLE_URL (try $attempt of $tries)"
        fi
        if ((attempt >= tries)); then
            return 1
        fi
        attempt=$((attempt + 1))
        sleep "$RETRY_DELAY"
    done
}

error_message() {
    jq -r '(.error.message // .session.message // empty) | tostring' <<<"$BODY" 2>/dev/null || true
}

logout() {
    local rc=$?
    if [[ -n $SID ]]; then
        if api DELETE /auth "" "$TIMEOUT" 2 && [[ $STATUS == 204 || $STATUS == 200 || $STATUS == 410 ]]; then
            log "session released"
        else
            log "WARNING: could not release the API session (HTTP ${STATUS:-none}); it expires by itself"
        fi
        SID=""
    fi
    exit "$rc"
}
trap logout EXIT
trap 'exit 143' TERM INT

login() {
    local body
    body=$(jq -n '{password: env.PIHOLE_PASSWORD}')
    api POST /auth "$body" || fail "cannot log in: Pi-hole at $PIHOLE_URL did not answer after $ATTEMPTS tries"
    case $STATUS in
        200) ;;
        401) fail "Pi-hole rejected the password (HTTP 401: $(error_message)); check the pihole-secret ExternalSecret" ;;
        *) fail "login failed with HTTP $STATUS: $(error_message)" ;;
    esac
    if [[ $(jq -r '.session.valid' <<<"$BODY") != true ]]; then
        fail "login did not return a valid session: $(error_message)"
    fi
    SID=$(jq -r '.session.sid // empty' <<<"$BODY")
}

# entries FILE: the file's values, comments and blank lines removed, sorted and unique.
entries() {
    [[ -r $1 ]] || fail "cannot read $1"
    awk '{ sub(/[ \t]+#.*/, ""); gsub(/^[ \t]+|[ \t]+$/, "") } $0 != "" && $0 !~ /^#/' "$1" | LC_ALL=C sort -u
}

uri() { jq -rn --arg v "$1" '$v | @uri'; }

json_array() { jq -Rsc 'split("\n") | map(select(. != ""))'; }

# expect WHAT CODE...: fail unless STATUS is one of the codes.
expect() {
    local what=$1 code
    shift
    for code in "$@"; do
        [[ $STATUS == "$code" ]] && return 0
    done
    fail "$what: HTTP $STATUS: $(error_message)"
}

# processed_errors: the API accepts a batch with 201 and reports per-item failures inside.
processed_errors() {
    jq -r '(.processed.errors // [])[] | "\(.item): \(.error)"' <<<"$BODY"
}

CHANGED=0

# reconcile NAME LIST_PATH ITEMS_FILTER POST_KEY ITEM_PATH WANTED_FILE
reconcile() {
    local name=$1 collection=$2 filter=$3 key=$4 item_path=$5 file=$6
    local wanted current missing extra body item errors
    wanted=$(entries "$file")
    api GET "$collection" || fail "cannot read $name"
    expect "reading $name" 200
    current=$(jq -r "$filter" <<<"$BODY" | LC_ALL=C sort -u)
    missing=$(LC_ALL=C comm -23 <(printf '%s\n' "$wanted" | sed '/^$/d') <(printf '%s\n' "$current" | sed '/^$/d'))
    extra=$(LC_ALL=C comm -13 <(printf '%s\n' "$wanted" | sed '/^$/d') <(printf '%s\n' "$current" | sed '/^$/d'))
    if [[ -n $missing ]]; then
        body=$(printf '%s\n' "$missing" | json_array |
            jq -c --arg key "$key" --arg comment "$COMMENT" '{($key): ., comment: $comment, groups: [0], enabled: true}')
        api POST "$collection" "$body" || fail "cannot add $name"
        expect "adding $name" 201
        errors=$(processed_errors)
        [[ -z $errors ]] || fail "adding $name: $errors"
        log "$name: added $(printf '%s\n' "$missing" | wc -l | tr -d ' ')"
        CHANGED=1
    fi
    if [[ -n $extra ]]; then
        while IFS= read -r item; do
            api DELETE "${item_path/@ITEM@/$(uri "$item")}" || fail "cannot delete $item from $name"
            expect "deleting $item from $name" 204
            log "$name: deleted $item"
        done <<<"$extra"
        CHANGED=1
    fi
    log "$name: $(printf '%s\n' "$wanted" | sed '/^$/d' | wc -l | tr -d ' ') wanted, in sync"
}

login
reconcile "block lists" "/lists?type=block" '.lists[] | select(.type == "block") | .address' \
    address '/lists/@ITEM@?type=block' "$ADLISTS_FILE"
reconcile "allowlist" "/domains/allow/exact" '.domains[] | .domain' \
    domain '/domains/allow/exact/@ITEM@' "$ALLOWLIST_FILE"

if ((CHANGED)); then
    log "running gravity (up to ${GRAVITY_TIMEOUT}s)"
    api POST /action/gravity "" "$GRAVITY_TIMEOUT" 1 || fail "gravity did not finish within ${GRAVITY_TIMEOUT}s"
    expect "gravity" 200
    log "gravity finished"
else
    log "nothing changed; gravity not needed"
fi
