#!/usr/bin/env bash
# Make Pi-hole's block lists and exact allowlist match the data files, through the Pi-hole v6
# REST API: log in (POST /api/auth), add what is missing, delete what is no longer listed, run
# gravity when something changed, and always release the session (DELETE /api/auth).
# Runs in a Job (image pihole/pihole: bash, curl, jq). Exits non-zero on any failure.
#
# What FTL does (pi-hole/FTL v6.4.1, the newest release to read for pihole/pihole 2026.07.2,
# which builds FTL's master branch): POST /api/action/gravity answers 200 and streams the
# output of `pihole -g` before gravity's exit code is known (src/api/action.c
# run_and_stream_command), so success is read from that output (gravity.sh marks every failure
# "[✗]", pi-hole/pi-hole v6.2.2) and from each list's "status" afterwards (gravity.sh
# database_adlist_status: 1 updated, 2 unchanged, 3 download failed but cached copy used,
# 4 download failed and no copy). POST /api/auth answers 429 "api_seats_exceeded" when every
# session of webserver.api.max_sessions is taken (src/api/auth.c): waiting does not free a seat
# within a Job's time, so it fails at once. A write that got no answer may still have been
# applied: it is never repeated blindly; the collection is read again and the changes computed
# anew (a repeated POST of an added list fails with UNIQUE constraint errors).
#
# Environment:
#   PIHOLE_URL       base URL of the Pi-hole web server, e.g. http://192.168.1.55
#   PIHOLE_PASSWORD  admin password (from the pihole-secret Secret)
#   ADLISTS_FILE     block list URLs, one per line, '#' comments
#   ALLOWLIST_FILE   exact allowlisted domains, one per line, '#' comments
#   ATTEMPTS         tries per read on connection errors, timeouts, 429 and 5xx, and rounds of
#                    re-read and recompute per collection when a write failed so (default 5)
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
            if [[ $STATUS == 429 && $(error_key) == api_seats_exceeded ]]; then
                fail "Pi-hole has no free API session (HTTP 429 api_seats_exceeded): every one of" \
                    "webserver.api.max_sessions is in use; raise webserver.api.max_sessions" \
                    "(FTLCONF_webserver_api_max_sessions) or let idle sessions expire, then run again"
            fi
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

error_key() {
    jq -r '.error.key // empty' <<<"$BODY" 2>/dev/null || true
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

# differences WANTED CURRENT: sets MISSING (wanted, not there) and EXTRA (there, not wanted).
differences() {
    MISSING=$(LC_ALL=C comm -23 <(printf '%s\n' "$1" | sed '/^$/d') <(printf '%s\n' "$2" | sed '/^$/d'))
    EXTRA=$(LC_ALL=C comm -13 <(printf '%s\n' "$1" | sed '/^$/d') <(printf '%s\n' "$2" | sed '/^$/d'))
}

# reconcile NAME LIST_PATH ITEMS_FILTER POST_KEY ITEM_PATH WANTED_FILE
# Each round reads the collection and computes the changes; a write that got no answer (or a
# 5xx) ends the round, and the next round starts from what Pi-hole then holds.
reconcile() {
    local name=$1 collection=$2 filter=$3 key=$4 item_path=$5 file=$6
    local wanted current body item errors round=1 complete
    wanted=$(entries "$file")
    while true; do
        api GET "$collection" || fail "cannot read $name"
        expect "reading $name" 200
        current=$(jq -r "$filter" <<<"$BODY" | LC_ALL=C sort -u)
        differences "$wanted" "$current"
        [[ -n $MISSING || -n $EXTRA ]] || break
        if ((round > ATTEMPTS)); then
            fail "$name: still not in sync after $ATTEMPTS rounds of writes that got no answer"
        fi
        ((round > 1)) && sleep "$RETRY_DELAY"
        round=$((round + 1))
        CHANGED=1
        complete=1
        if [[ -n $MISSING ]]; then
            body=$(printf '%s\n' "$MISSING" | json_array |
                jq -c --arg key "$key" --arg comment "$COMMENT" '{($key): ., comment: $comment, groups: [0], enabled: true}')
            if api POST "$collection" "$body" "$TIMEOUT" 1; then
                expect "adding $name" 201
                errors=$(processed_errors)
                [[ -z $errors ]] || fail "adding $name: $errors"
                log "$name: added $(printf '%s\n' "$MISSING" | wc -l | tr -d ' ')"
            else
                log "$name: adding got no answer; reading $name again"
                continue
            fi
        fi
        while IFS= read -r item; do
            [[ -n $item ]] || continue
            if api DELETE "${item_path/@ITEM@/$(uri "$item")}" "" "$TIMEOUT" 1; then
                # 404: already gone (an earlier try that got no answer did delete it)
                expect "deleting $item from $name" 204 404
                log "$name: deleted $item"
            else
                log "$name: deleting $item got no answer; reading $name again"
                complete=0
                break
            fi
        done <<<"$EXTRA"
        ((complete)) && break
    done
    log "$name: $(printf '%s\n' "$wanted" | sed '/^$/d' | wc -l | tr -d ' ') wanted, in sync"
}

# gravity: run it, then fail on any failure its streamed output or the lists' status report.
gravity() {
    local failed lists wanted
    log "running gravity (up to ${GRAVITY_TIMEOUT}s)"
    api POST /action/gravity "" "$GRAVITY_TIMEOUT" 1 || fail "gravity did not finish within ${GRAVITY_TIMEOUT}s"
    expect "gravity" 200
    # Lines gravity marks as failed, without the terminal's carriage returns and escapes.
    failed=$(printf '%s\n' "$BODY" | tr -d '\r' | sed 's/\x1b\[[0-9;]*[A-Za-z]//g' | grep -F '[✗]' || true)
    api GET "/lists?type=block" || fail "cannot read block lists after gravity"
    expect "reading block lists after gravity" 200
    wanted=$(entries "$ADLISTS_FILE" | json_array)
    lists=$(jq -r --argjson wanted "$wanted" '
        .lists[] | select(.type == "block" and (.address as $a | $wanted | index($a)))
        | select(.status != 1 and .status != 2)
        | "\(.address): " + ({"0": "not processed by gravity",
                                "3": "download failed, the previously cached copy is used",
                                "4": "download failed and no cached copy exists: it blocks nothing"}
                               [.status | tostring] // "status \(.status)")' <<<"$BODY")
    if [[ -n $failed || -n $lists ]]; then
        [[ -z $failed ]] || log "gravity reported:"$'\n'"$failed"
        [[ -z $lists ]] || log "block lists not in use as listed:"$'\n'"$lists"
        fail "gravity failed for $(printf '%s\n' "$lists" | sed '/^$/d' | wc -l | tr -d ' ') block list(s)" \
            "and reported $(printf '%s\n' "$failed" | sed '/^$/d' | wc -l | tr -d ' ') failure(s); see above"
    fi
    log "gravity finished: every block list is in use"
}

login
reconcile "block lists" "/lists?type=block" '.lists[] | select(.type == "block") | .address' \
    address '/lists/@ITEM@?type=block' "$ADLISTS_FILE"
reconcile "allowlist" "/domains/allow/exact" '.domains[] | .domain' \
    domain '/domains/allow/exact/@ITEM@' "$ALLOWLIST_FILE"

if ((CHANGED)); then
    gravity
else
    log "nothing changed; gravity not needed"
fi
