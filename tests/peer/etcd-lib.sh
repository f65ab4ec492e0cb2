# shellcheck shell=bash
# etcd-lib.sh -- start/stop a throw-away single-member etcd 3.4 on loopback.
#
# Meant to be `source`d by test scripts and by Rust integration tests
# (e.g. `bash -c 'source tests/peer/etcd-lib.sh; etcd_restore_and_start db /tmp/w; ...'`).
# Needs: bash >= 4, etcd + etcdctl (Debian packages etcd-server etcd-client), coreutils.
#
# Public functions (all return non-zero on failure, printing the reason and the
# tail of the etcd log to stderr):
#
#   etcd_start DATA_DIR [LOG_FILE]
#       Start etcd on DATA_DIR (created, chmod 700, if missing; an existing
#       member data dir is reused as is).  Listens ONLY on 127.0.0.1, on two
#       free random ports.  Waits (ETCDLIB_START_TIMEOUT s, default 20) until
#       `etcdctl endpoint health` succeeds.  LOG_FILE defaults to
#       DATA_DIR/../etcd.log.  Exports ETCD_ENDPOINT (http://127.0.0.1:PORT),
#       ETCD_PID, ETCD_PEER_URL, ETCD_DATA_DIR, ETCD_LOG and ETCDCTL_API=3.
#
#   etcd_stop [PID]
#       SIGTERM (default: $ETCD_PID), wait up to ETCDLIB_STOP_TIMEOUT s
#       (default 15), then SIGKILL.  Unsets ETCD_ENDPOINT/ETCD_PID if it
#       stopped the current instance.
#
#   etcd_restore_and_start DBFILE WORKDIR [LOG_FILE]
#       `etcdctl snapshot restore DBFILE --skip-hash-check --data-dir WORKDIR/data`
#       (ETCDLIB_RESTORE_TOOL=etcdutl: etcd 3.5's `etcdutl snapshot restore`;
#       ETCDLIB_HASH_CHECK=1: without --skip-hash-check, so DBFILE must end in a valid
#       SHA-256 trailer)
#       (WORKDIR/data must not exist yet) with the same member name, token and
#       peer URL that etcd_start then uses, then etcd_start WORKDIR/data.
#       DBFILE may be a plain member db (no trailer) or a `snapshot save` file.
#       Log defaults to WORKDIR/etcd.log.
#
#   etcdctl_local ARGS...
#       `ETCDCTL_API=3 etcdctl --endpoints=$ETCD_ENDPOINT ARGS...`
#
#   etcd_stop_all
#       Stop every etcd this shell started (also run automatically on EXIT).
#
# Cleanup: the first etcd_start installs an EXIT trap (chained in front of any
# EXIT trap already set) that stops every etcd this shell started, and, if no
# trap is set for them, INT/TERM traps that exit (and so run the EXIT trap).
# If you set your own EXIT trap AFTER sourcing+starting, call etcd_stop_all in it.
# In addition each etcd gets a tiny watchdog that kills it if the starting
# shell dies without running its traps (e.g. SIGKILL from a test harness);
# disable with ETCDLIB_WATCHDOG=0.
#
# Tunables (environment): ETCDLIB_NAME (member name, default "boltpack"),
# ETCDLIB_TOKEN (initial cluster token, default "boltpack-fixture"),
# ETCDLIB_START_TIMEOUT, ETCDLIB_STOP_TIMEOUT, ETCDLIB_RESTORE_TOOL, ETCDLIB_HASH_CHECK,
# ETCDLIB_EXTRA_ARGS (extra etcd
# flags, word-split), ETCDLIB_WATCHDOG.  Deliberately no ETCD_* names: etcd
# itself reads ETCD_* variables as flags.
#
# Every background process started here has stdin/stdout/stderr redirected
# away from the caller, so a caller that captures output (Rust
# Command::output()) does not hang on an inherited pipe.

export ETCDCTL_API=3

: "${ETCDLIB_NAME:=boltpack}"
: "${ETCDLIB_TOKEN:=boltpack-fixture}"
: "${ETCDLIB_START_TIMEOUT:=20}"
: "${ETCDLIB_STOP_TIMEOUT:=15}"
: "${ETCDLIB_WATCHDOG:=1}"
: "${ETCDLIB_RESTORE_TOOL:=etcdctl}"
: "${ETCDLIB_HASH_CHECK:=0}"

# pids started by this shell: etcd pid -> watchdog pid ("" if none)
declare -gA _ETCDLIB_PIDS 2>/dev/null || declare -A _ETCDLIB_PIDS
_ETCDLIB_TRAP_SET=${_ETCDLIB_TRAP_SET:-0}

_etcdlib_log() { printf 'etcd-lib: %s\n' "$*" >&2; }

# first error lines and the tail of an etcd log, to stderr
_etcdlib_show_log() {
    [ -f "$1" ] || return 0
    {
        echo "---- first errors in $1:"
        grep -m 5 -E '"level":"(error|fatal|panic)"|^panic:|^fatal error:' "$1" || true
        echo "---- last lines of $1:"
        tail -n 15 "$1"
        echo "----"
    } >&2 2>/dev/null || true
}

# true if something listens on 127.0.0.1:$1 (or on any address with that port)
_etcdlib_port_busy() {
    local p=$1
    if command -v ss >/dev/null 2>&1; then
        if [ -n "$(ss -Htan "( sport = :$p )" 2>/dev/null)" ]; then return 0; fi
    fi
    # a successful connect means someone listens there
    if (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then return 0; fi
    return 1
}

# print one free port in 20000..32767 (below Linux's default ephemeral range),
# different from the ports given as arguments
_etcdlib_free_port() {
    local p i x clash
    for ((i = 0; i < 200; i++)); do
        p=$((20000 + (RANDOM * 32768 + RANDOM) % 12768))
        clash=0
        for x in "$@"; do [ "$x" = "$p" ] && clash=1; done
        [ $clash = 1 ] && continue
        if ! _etcdlib_port_busy "$p"; then
            echo "$p"
            return 0
        fi
    done
    _etcdlib_log "no free port found"
    return 1
}

# true while pid $1 exists and is not a zombie
_etcdlib_alive() {
    local st
    kill -0 "$1" 2>/dev/null || return 1
    st=$(ps -o stat= -p "$1" 2>/dev/null) || return 1
    case "$st" in Z*|"") return 1 ;; esac
    return 0
}

_etcdlib_install_trap() {
    [ "$_ETCDLIB_TRAP_SET" = 1 ] && return 0
    local old="" words
    words=$(trap -p EXIT)
    if [ -n "$words" ]; then
        eval "set -- $words"   # trap -- 'CMD' EXIT
        old=$3
    fi
    # shellcheck disable=SC2064
    trap "etcd_stop_all${old:+; $old}" EXIT
    [ -z "$(trap -p INT)" ] && trap 'exit 130' INT
    [ -z "$(trap -p TERM)" ] && trap 'exit 143' TERM
    [ -z "$(trap -p HUP)" ] && trap 'exit 129' HUP
    _ETCDLIB_TRAP_SET=1
}

etcdctl_local() {
    if [ -z "${ETCD_ENDPOINT:-}" ]; then
        _etcdlib_log "etcdctl_local: ETCD_ENDPOINT is not set (etcd_start first)"
        return 1
    fi
    ETCDCTL_API=3 etcdctl --endpoints="$ETCD_ENDPOINT" "$@"
}

# _etcdlib_launch DATA_DIR LOG CLIENT_PORT PEER_PORT
# -> 0 ready, 1 failed, 2 failed because a port was taken (caller may retry)
_etcdlib_launch() {
    local dir=$1 log=$2 cport=$3 pport=$4
    local curl="http://127.0.0.1:$cport" purl="http://127.0.0.1:$pport"
    local pid wd="" deadline parent=$BASHPID
    # shellcheck disable=SC2086
    env -u ETCD_ENDPOINT -u ETCD_PID -u ETCD_PEER_URL -u ETCD_DATA_DIR -u ETCD_LOG \
        etcd --name "$ETCDLIB_NAME" \
        --data-dir "$dir" \
        --listen-client-urls "$curl" --advertise-client-urls "$curl" \
        --listen-peer-urls "$purl" --initial-advertise-peer-urls "$purl" \
        --initial-cluster "$ETCDLIB_NAME=$purl" \
        --initial-cluster-token "$ETCDLIB_TOKEN" \
        --initial-cluster-state new \
        --logger zap --log-outputs stderr \
        ${ETCDLIB_EXTRA_ARGS:-} \
        </dev/null >>"$log" 2>&1 &
    pid=$!
    if [ "$ETCDLIB_WATCHDOG" = 1 ]; then
        (
            set +e +u +o pipefail
            trap '' INT HUP
            s=""
            trap '[ -n "$s" ] && kill "$s" 2>/dev/null; exit 0' TERM
            while kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; do
                sleep 1 & s=$!
                wait "$s"
            done
            if ! kill -0 "$parent" 2>/dev/null && kill -0 "$pid" 2>/dev/null; then
                kill -TERM "$pid" 2>/dev/null
                for _ in 1 2 3 4 5 6 7 8 9 10; do
                    kill -0 "$pid" 2>/dev/null || exit 0
                    sleep 1
                done
                kill -KILL "$pid" 2>/dev/null
            fi
        ) </dev/null >/dev/null 2>&1 &
        wd=$!
    fi
    _ETCDLIB_PIDS[$pid]=$wd

    deadline=$((SECONDS + ETCDLIB_START_TIMEOUT))
    while :; do
        if ! _etcdlib_alive "$pid"; then
            wait "$pid" 2>/dev/null || true
            _etcdlib_kill_watchdog "$pid"
            unset '_ETCDLIB_PIDS[$pid]'
            if grep -q 'address already in use' "$log" 2>/dev/null; then
                return 2
            fi
            _etcdlib_log "etcd exited during startup (log: $log)"
            _etcdlib_show_log "$log"
            return 1
        fi
        if ETCDCTL_API=3 etcdctl --endpoints="$curl" --dial-timeout=1s \
            --command-timeout=2s endpoint health >/dev/null 2>&1; then
            break
        fi
        if [ "$SECONDS" -ge "$deadline" ]; then
            _etcdlib_log "etcd not healthy after ${ETCDLIB_START_TIMEOUT}s (log: $log)"
            _etcdlib_show_log "$log"
            etcd_stop "$pid"
            return 1
        fi
        sleep 0.2
    done
    export ETCD_ENDPOINT=$curl ETCD_PID=$pid ETCD_PEER_URL=$purl \
        ETCD_DATA_DIR=$dir ETCD_LOG=$log
    return 0
}

_etcdlib_kill_watchdog() {
    local wd=${_ETCDLIB_PIDS[$1]:-}
    if [ -n "$wd" ]; then
        kill -TERM "$wd" 2>/dev/null || true
        wait "$wd" 2>/dev/null || true
    fi
    return 0
}

# _etcdlib_start DATA_DIR LOG [PEER_PORT]
_etcdlib_start() {
    local dir=$1 log=$2 pport=${3:-} cport attempt rc
    if ! command -v etcd >/dev/null 2>&1 || ! command -v etcdctl >/dev/null 2>&1; then
        _etcdlib_log "etcd/etcdctl not installed (apt-get install etcd-server etcd-client)"
        return 1
    fi
    _etcdlib_install_trap
    mkdir -p "$dir" "$(dirname "$log")" || return 1
    chmod 700 "$dir" || return 1
    for attempt in 1 2 3 4 5; do
        if [ -z "$pport" ] || [ "$attempt" -gt 1 ]; then
            pport=$(_etcdlib_free_port) || return 1
        fi
        cport=$(_etcdlib_free_port "$pport") || return 1
        rc=0
        _etcdlib_launch "$dir" "$log" "$cport" "$pport" || rc=$?
        [ $rc = 2 ] || return $rc
        _etcdlib_log "port clash on $cport/$pport, retrying"
    done
    _etcdlib_log "could not start etcd (ports kept clashing)"
    return 1
}

etcd_start() {
    if [ $# -lt 1 ] || [ $# -gt 2 ]; then
        _etcdlib_log "usage: etcd_start DATA_DIR [LOG_FILE]"
        return 1
    fi
    local dir log
    dir=$(realpath -m "$1")
    log=${2:-$(dirname "$dir")/etcd.log}
    _etcdlib_start "$dir" "$log"
}

etcd_stop() {
    local pid=${1:-${ETCD_PID:-}} deadline
    if [ -z "$pid" ]; then
        _etcdlib_log "etcd_stop: no pid (ETCD_PID unset)"
        return 1
    fi
    if _etcdlib_alive "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        deadline=$((SECONDS + ETCDLIB_STOP_TIMEOUT))
        while _etcdlib_alive "$pid" && [ "$SECONDS" -lt "$deadline" ]; do
            sleep 0.1
        done
        if _etcdlib_alive "$pid"; then
            _etcdlib_log "etcd $pid ignored SIGTERM for ${ETCDLIB_STOP_TIMEOUT}s, sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            while _etcdlib_alive "$pid"; do sleep 0.1; done
        fi
    fi
    wait "$pid" 2>/dev/null || true   # reap if it is our child
    _etcdlib_kill_watchdog "$pid"
    unset '_ETCDLIB_PIDS[$pid]'
    if [ "${ETCD_PID:-}" = "$pid" ]; then
        unset ETCD_PID ETCD_ENDPOINT ETCD_PEER_URL
    fi
    return 0
}

etcd_stop_all() {
    local pid
    for pid in "${!_ETCDLIB_PIDS[@]}"; do
        etcd_stop "$pid"
    done
    return 0
}

etcd_restore_and_start() {
    if [ $# -lt 2 ] || [ $# -gt 3 ]; then
        _etcdlib_log "usage: etcd_restore_and_start DBFILE WORKDIR [LOG_FILE]"
        return 1
    fi
    local db=$1 work data log pport out
    work=$(realpath -m "$2")
    data=$work/data
    log=${3:-$work/etcd.log}
    if [ ! -f "$db" ]; then
        _etcdlib_log "etcd_restore_and_start: no such file: $db"
        return 1
    fi
    if [ -e "$data" ]; then
        _etcdlib_log "etcd_restore_and_start: $data already exists"
        return 1
    fi
    mkdir -p "$work" || return 1
    pport=$(_etcdlib_free_port) || return 1
    local tool=etcdctl skip=--skip-hash-check
    [ "$ETCDLIB_RESTORE_TOOL" = etcdutl ] && tool=etcdutl
    [ "$ETCDLIB_HASH_CHECK" = 1 ] && skip=
    # shellcheck disable=SC2086
    if ! out=$(ETCDCTL_API=3 "$tool" snapshot restore "$db" $skip \
        --data-dir "$data" --name "$ETCDLIB_NAME" \
        --initial-cluster "$ETCDLIB_NAME=http://127.0.0.1:$pport" \
        --initial-advertise-peer-urls "http://127.0.0.1:$pport" \
        --initial-cluster-token "$ETCDLIB_TOKEN" 2>&1); then
        _etcdlib_log "snapshot restore of $db failed:"
        printf '%s\n' "$out" >&2
        return 1
    fi
    printf '%s\n' "$out" >>"$log"
    _etcdlib_start "$data" "$log" "$pport"
}
