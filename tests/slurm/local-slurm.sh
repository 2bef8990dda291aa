#!/usr/bin/env bash
# local-slurm.sh - start/stop a private, single-host Slurm cluster for tests.
#
# Usage:
#   tests/slurm/local-slurm.sh start DIR          # set up DIR, start daemons,
#                                                 # print `export` lines
#   tests/slurm/local-slurm.sh stop DIR [--purge] # stop daemons (always exit 0)
#   tests/slurm/local-slurm.sh status DIR         # exit 0 iff all daemons run
#   tests/slurm/local-slurm.sh env DIR            # print the `export` lines again
#
# Typical use (do not write `eval "$(... start DIR)"`: eval would hide a
# failed start):
#   tests/slurm/local-slurm.sh start "$tmp" >"$tmp.env" && . "$tmp.env"
#   srun --mpi=pmix -n 8 ./prog
#   tests/slurm/local-slurm.sh stop "$tmp"
#
# Everything lives in DIR: slurm.conf, a private munged (own key, socket,
# pid, seed and log files), StateSaveLocation, SlurmdSpoolDir, TmpFS, logs
# and pid files.  Nothing in /etc/slurm, /etc/munge or /run/munge is read
# or written, no systemd units are used, and all daemons listen on
# 127.0.0.1 only, on two free ports picked from 20000-39999.  Jobs are run
# as the invoking user; PMIx works with `srun --mpi=pmix` (MpiDefault=none).  All progress
# messages go to stderr; only the `export` lines go to stdout (they are also
# saved in DIR/env.sh).
#
# Knobs (environment):
#   LOCAL_SLURM_CPUS     CPUs declared for the node (default: `nproc`).
#   LOCAL_SLURM_TIMEOUT  seconds to wait for each daemon/the node (default 30).
#   LOCAL_SLURM_DEBUG    SlurmctldDebug/SlurmdDebug level (default: info).
#   LOCAL_SLURM_NODENAME NodeName (default: `hostname -s`); it need not
#                        resolve, all addresses are given as 127.0.0.1.
#   LOCAL_SLURM_STOP_TIMEOUT  seconds before SIGTERM becomes SIGKILL (10).
#   LOCAL_SLURM_LOG_LINES     log lines shown when start fails (25).
#
# Runs as root (the CI case; SlurmUser=SlurmdUser=root) or as any other
# user (the daemons then run as that user and only it can run jobs).
#
# Oversubscription (why `srun -n 8` works on a 2-core machine):
#   The node is declared with its real CPU count (CPUs=`nproc`), so
#   SLURM_CPUS_ON_NODE & co. stay truthful.  Slurm always refuses more tasks
#   than allocated CPUs unless the job "overcommits", so the printed
#   environment sets SLURM_OVERCOMMIT=1 / SALLOC_OVERCOMMIT=1 /
#   SBATCH_OVERCOMMIT=1, which is the same as passing -O/--overcommit to
#   every srun/salloc/sbatch.  The partition is OverSubscribe=FORCE so that
#   several jobs (e.g. from parallel tests) can share the CPUs at the same
#   time instead of queueing.  SlurmdParameters=config_overrides keeps the
#   node from being drained when the declared layout differs from what
#   slurmd detects (containers, LOCAL_SLURM_CPUS larger than nproc).  If you
#   cannot use the environment, pass -O to srun or start the cluster with
#   LOCAL_SLURM_CPUS=64 (more CPUs than the host has).

set -euo pipefail

PROG=local-slurm
CLUSTER_NAME=rayhpctest
PARTITION=debug

log() { printf '%s: %s\n' "$PROG" "$*" >&2; }
die() { printf '%s: error: %s\n' "$PROG" "$*" >&2; exit 1; }

usage() {
    sed -n '3,9p' "$0" | sed 's/^# \{0,1\}//' >&2
    exit 2
}

# ---------------------------------------------------------------- helpers

find_bin() {  # find_bin NAME -> absolute path (searches sbin too)
    local name=$1 d
    if command -v "$name" >/dev/null 2>&1; then
        command -v "$name"
        return 0
    fi
    for d in /usr/sbin /usr/local/sbin /sbin /usr/bin /usr/local/bin; do
        if [[ -x $d/$name ]]; then
            printf '%s\n' "$d/$name"
            return 0
        fi
    done
    return 1
}

now_ms() { date +%s%3N; }

# Prints the TCP ports currently in use (any state, IPv4 and IPv6), one a
# line, in decimal.  Uses /proc so it needs neither ss nor netstat.
used_ports() {
    local f
    for f in /proc/net/tcp /proc/net/tcp6; do
        [[ -r $f ]] || continue
        awk 'NR > 1 { split($2, a, ":"); print a[2] }' "$f"
    done | while read -r hex; do printf '%d\n' "0x$hex"; done | sort -u
}

# pick_ports N -> N consecutive free ports in 20000-39999
pick_ports() {
    local n=$1 used tries base p ok i
    used=" $(used_ports | tr '\n' ' ') "
    for ((tries = 0; tries < 200; tries++)); do
        base=$((20000 + (RANDOM * 32768 + RANDOM) % (20000 - n)))
        ok=1
        for ((i = 0; i < n; i++)); do
            p=$((base + i))
            if [[ $used == *" $p "* ]]; then ok=0; break; fi
        done
        if ((ok)); then
            for ((i = 0; i < n; i++)); do printf '%d\n' $((base + i)); done
            return 0
        fi
    done
    return 1
}

# alive PID: process exists and is not a zombie (pid 1 of a container may
# never reap the daemons we detached)
alive() {
    local stat
    read -r stat 2>/dev/null <"/proc/$1/stat" || return 1
    stat=${stat##*) }
    [[ ${stat:0:1} != [ZX] ]]
}

# pid_of NAME -> pid from DIR/run/NAME.pid if that process is alive and
# really is NAME (guards against recycled pids); fails otherwise.
pid_of() {
    local name=$1 f pid comm
    for f in "$RUN/$name.pid" "$RUN/$name.launch.pid"; do
        [[ -r $f ]] || continue
        pid=$(tr -dc '0-9' <"$f" || true)
        [[ -n $pid ]] || continue
        alive "$pid" || continue
        comm=$(cat "/proc/$pid/comm" 2>/dev/null || true)
        if [[ $comm == "$name" ]]; then
            printf '%s\n' "$pid"
            return 0
        fi
    done
    return 1
}

is_running() { pid_of "$1" >/dev/null; }

log_tail() {  # print the end of the daemons' stderr (with -D/-F it has
    local f   # everything their log files have, plus early start-up errors)
    for f in "$LOGD"/*.out; do
        [[ -s $f ]] || continue
        printf '%s: ---- last lines of %s ----\n' "$PROG" "$f" >&2
        tail -n "${LOCAL_SLURM_LOG_LINES:-25}" "$f" >&2 || true
    done
}

fail() {  # fail MSG: report, show logs, tear down what we started, exit 1
    printf '%s: error: %s\n' "$PROG" "$*" >&2
    if is_running slurmctld; then
        printf '%s: ---- sinfo ----\n' "$PROG" >&2
        SLURM_CONF=$CONF timeout 5 "$SINFO" -N -l >&2 2>&1 || true
    fi
    log_tail
    do_stop quiet || true
    exit 1
}

# launch NAME CMD... : start CMD in its own session, detached from our
# stdin/stdout/stderr (so `$(local-slurm.sh start ...)` does not hang).
launch() {
    local name=$1
    shift
    {
        printf '==== %s: starting' "$(date '+%F %T')"
        printf ' %q' "$@"
        printf '\n'
    } >>"$LOGD/$name.out"
    SLURM_CONF=$CONF setsid "$@" </dev/null >>"$LOGD/$name.out" 2>&1 &
    echo $! >"$RUN/$name.launch.pid"
}

# wait_for DESC NAME CMD... : poll CMD until it succeeds; fail if daemon
# NAME died or the timeout expired.
wait_for() {
    local desc=$1 name=$2 deadline
    shift 2
    deadline=$(($(now_ms) + TIMEOUT * 1000))
    while ! "$@" >/dev/null 2>&1; do
        # give the freshly forked process time to exec before checking comm
        if ! is_running "$name" && ! alive "$(cat "$RUN/$name.launch.pid")"; then
            fail "$name exited while waiting for $desc"
        fi
        if (($(now_ms) > deadline)); then
            fail "timed out after ${TIMEOUT}s waiting for $desc"
        fi
        sleep 0.1
    done
}

munge_ok() {
    [[ -S $MUNGE_SOCKET ]] &&
        "$MUNGE_BIN" -n -S "$MUNGE_SOCKET" | "$UNMUNGE_BIN" -S "$MUNGE_SOCKET"
}

ctld_ok() { SLURM_CONF=$CONF timeout 5 "$SCONTROL" ping | grep -q 'is UP'; }

node_state() {
    SLURM_CONF=$CONF timeout 5 "$SINFO" -h -N -n "$NODE" -o '%T' 2>/dev/null | head -n 1
}

node_idle() { [[ $(node_state) == idle ]]; }

print_env() { cat "$DIR/env.sh"; }

# ---------------------------------------------------------------- setup

set_paths() {
    [[ -n ${1:-} ]] || usage
    mkdir -p -- "$1" 2>/dev/null || true
    [[ -d $1 ]] || die "cannot create directory '$1'"
    DIR=$(cd -- "$1" && pwd -P)
    [[ $DIR != *[[:space:]]* ]] || die "DIR must not contain white space: '$DIR'"
    CONF=$DIR/slurm.conf
    RUN=$DIR/run
    LOGD=$DIR/log
    MUNGED_DIR=$DIR/munge
    TIMEOUT=${LOCAL_SLURM_TIMEOUT:-30}
    SOCKDIR=$DIR
    if [[ -r $DIR/sockdir ]]; then
        SOCKDIR=$(cat "$DIR/sockdir")
    fi
    set_sock_paths
}

# Unix socket paths are limited to 107 bytes.  The munge socket and
# SlurmdSpoolDir (slurmstepd puts NODE_JOB.STEP and stepd.slurm.pmix.JOB.STEP
# sockets there) live in SOCKDIR: DIR itself, or for a long DIR a short
# private directory /tmp/lslurm.XXXXXX, named in DIR/sockdir, that stop
# removes.  (The PMIx plugin's own client/server link is TCP on 127.0.0.1.)
set_sock_paths() {
    MUNGE_SOCKET=$SOCKDIR/munge/munge.socket
    SPOOL=$SOCKDIR/spool
}

find_tools() {  # find_tools [soft]: soft = do not fail on missing tools
    local t missing=()
    for t in munged munge unmunge slurmctld slurmd scontrol sinfo squeue scancel; do
        find_bin "$t" >/dev/null || missing+=("$t")
    done
    if ((${#missing[@]})) && [[ ${1:-} != soft ]]; then
        die "not found: ${missing[*]} (install munge, slurmctld, slurmd, slurm-client)"
    fi
    MUNGED_BIN=$(find_bin munged || echo munged)
    MUNGE_BIN=$(find_bin munge || echo munge)
    UNMUNGE_BIN=$(find_bin unmunge || echo unmunge)
    SLURMCTLD_BIN=$(find_bin slurmctld || echo slurmctld)
    SLURMD_BIN=$(find_bin slurmd || echo slurmd)
    SCONTROL=$(find_bin scontrol || echo scontrol)
    SINFO=$(find_bin sinfo || echo sinfo)
    SQUEUE=$(find_bin squeue || echo squeue)
    SCANCEL=$(find_bin scancel || echo scancel)
}

make_key() {
    local key=$MUNGED_DIR/munge.key
    [[ -s $key ]] && return 0
    if find_bin mungekey >/dev/null; then
        "$(find_bin mungekey)" --create --keyfile="$key" >/dev/null 2>&1 || true
    fi
    if [[ ! -s $key ]]; then
        (umask 077 && dd if=/dev/urandom of="$key" bs=1024 count=1 status=none)
    fi
    chmod 600 "$key"
}

write_conf() {
    local ctld_port=$1 slurmd_port=$2 user cpus
    user=$(id -un)
    cpus=${LOCAL_SLURM_CPUS:-$(nproc)}
    [[ $cpus =~ ^[1-9][0-9]*$ ]] || die "bad LOCAL_SLURM_CPUS '$cpus'"
    local dbg=${LOCAL_SLURM_DEBUG:-info}
    local first_job=$(((RANDOM * 32768 + RANDOM) % 60000000 + 1000))

    # The system plugstack.conf may pull in site SPANK plugins; use an empty one.
    : >"$DIR/plugstack.conf"

    cat >"$CONF" <<EOF
# Generated by tests/slurm/local-slurm.sh on $(date '+%F %T'); do not edit.
ClusterName=$CLUSTER_NAME
SlurmctldHost=localhost(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$slurmd_port
SlurmUser=$user
SlurmdUser=$user

# private munged, found through its socket
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$MUNGE_SOCKET

StateSaveLocation=$DIR/state
SlurmdSpoolDir=$SPOOL
TmpFS=$DIR/tmp
SlurmctldPidFile=$RUN/slurmctld.pid
SlurmdPidFile=$RUN/slurmd.pid
SlurmctldLogFile=$LOGD/slurmctld.log
SlurmdLogFile=$LOGD/slurmd.log
SlurmctldDebug=$dbg
SlurmdDebug=$dbg
PlugStackConfig=$DIR/plugstack.conf

# no cgroups, no accounting, no affinity
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
JobContainerType=job_container/none
SwitchType=switch/none
MpiDefault=none
# bind slurmctld, slurmd, slurmstepd and srun to 127.0.0.1, not 0.0.0.0
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny

# scheduling: CPUs are consumable, but the partition lets jobs share them
# (OverSubscribe=FORCE) and clients overcommit (SLURM_OVERCOMMIT=1), see
# the header of local-slurm.sh.
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
# reject (instead of queueing forever) jobs that can never fit, e.g.
# srun -n 8 on 2 CPUs without --overcommit
EnforcePartLimits=ALL

# Job ids start at a random point: Open MPI names its shared-memory files
# after the job id (PMIx namespace slurm.pmix.JOB.STEP), so two private
# clusters on one host that both numbered from 1 crashed each other's MPI
# jobs when their ids met.
FirstJobId=$first_job

# keep things snappy for tests
InactiveLimit=0
KillWait=2
MinJobAge=10
MessageTimeout=10
SlurmctldTimeout=30
SlurmdTimeout=60
Waittime=0
UnkillableStepTimeout=30
MailProg=/bin/true

NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=localhost CPUs=$cpus State=UNKNOWN
PartitionName=$PARTITION Nodes=$NODE Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE:64
EOF

    cat >"$DIR/env.sh" <<EOF
export SLURM_CONF=$CONF
export SLURM_OVERCOMMIT=1
export SALLOC_OVERCOMMIT=1
export SBATCH_OVERCOMMIT=1
export LOCAL_SLURM_DIR=$DIR
EOF
}

# ---------------------------------------------------------------- start

do_start() {
    find_tools
    if is_running munged && is_running slurmctld && is_running slurmd && [[ -r $DIR/env.sh ]]; then
        log "cluster in $DIR is already running"
        print_env
        return 0
    fi
    # half-running from an earlier attempt: clean up first
    do_stop quiet || true

    local t0 ports ctld_port slurmd_port
    t0=$(now_ms)
    NODE=${LOCAL_SLURM_NODENAME:-$(hostname -s 2>/dev/null || true)}
    [[ $NODE =~ ^[A-Za-z0-9][A-Za-z0-9_-]*$ ]] || NODE=localnode

    SOCKDIR=$DIR
    local longest=$((${#NODE} + 20 > 40 ? ${#NODE} + 20 : 40))
    if ((${#DIR} + longest > 100)); then
        SOCKDIR=$(mktemp -d /tmp/lslurm.XXXXXX)
        chmod 755 "$SOCKDIR"
        echo "$SOCKDIR" >"$DIR/sockdir"
        log "DIR is long: munge socket and SlurmdSpoolDir go to $SOCKDIR"
    fi
    set_sock_paths

    mkdir -p "$RUN" "$LOGD" "$MUNGED_DIR" "$DIR/state" "$DIR/tmp" \
        "$SPOOL" "$(dirname "$MUNGE_SOCKET")"
    # munged insists that nobody else can write where its files live
    chmod 755 "$MUNGED_DIR" "$RUN" "$LOGD" "$(dirname "$MUNGE_SOCKET")"
    # start from a clean slate: old jobs/steps from a previous run must not
    # come back, the logs are kept (appended) for debugging.
    rm -rf "${DIR:?}/state/"* "${SPOOL:?}/"* "${DIR:?}/tmp/"*
    rm -f "$RUN"/*.pid "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock"

    ports=$(pick_ports 2) || die "no free port pair found in 20000-39999"
    ctld_port=$(sed -n 1p <<<"$ports")
    slurmd_port=$(sed -n 2p <<<"$ports")
    write_conf "$ctld_port" "$slurmd_port"
    log "DIR=$DIR node=$NODE slurmctld=127.0.0.1:$ctld_port slurmd=127.0.0.1:$slurmd_port"

    # munged: -F keeps it in the foreground (we detach it ourselves), --force
    # lets it run as root / with unusual permissions.
    make_key
    launch munged "$MUNGED_BIN" --foreground --force \
        --socket="$MUNGE_SOCKET" \
        --key-file="$MUNGED_DIR/munge.key" \
        --pid-file="$RUN/munged.pid" \
        --seed-file="$MUNGED_DIR/munged.seed" \
        --log-file="$LOGD/munged.log" \
        --origin=127.0.0.1 \
        --num-threads=4
    wait_for "munged socket $MUNGE_SOCKET" munged munge_ok

    # -D: stay in the foreground (detached by launch), -i: ignore state errors
    launch slurmctld "$SLURMCTLD_BIN" -D -i -f "$CONF"
    wait_for "slurmctld to answer pings" slurmctld ctld_ok

    launch slurmd "$SLURMD_BIN" -D -N "$NODE" -f "$CONF"
    wait_for "node $NODE to become idle" slurmd node_idle

    log "started in $(( $(now_ms) - t0 )) ms"
    print_env
}

# ---------------------------------------------------------------- stop

# kill_wait SIG PIDS...: send SIG, wait (bounded) for exit, SIGKILL leftovers
kill_wait() {
    local pids=("$@") deadline p still
    ((${#pids[@]})) || return 0
    kill -TERM "${pids[@]}" 2>/dev/null || true
    deadline=$(($(now_ms) + ${LOCAL_SLURM_STOP_TIMEOUT:-10} * 1000))
    while :; do
        still=()
        for p in "${pids[@]}"; do
            alive "$p" && still+=("$p")
        done
        ((${#still[@]})) || return 0
        if (($(now_ms) > deadline)); then
            log "killing stubborn processes ${still[*]}"
            kill -KILL "${still[@]}" 2>/dev/null || true
            return 0
        fi
        sleep 0.1
    done
}

# Scan /proc once (no fork per process) for processes of this cluster that
# survive its daemons: slurmstepd (slurmd gives it SLURM_CONF=DIR/slurm.conf)
# with all its descendants (the tasks) -> STRAY_STEPS, and client commands
# (srun, salloc, sattach) run with this SLURM_CONF -> STRAY_CLIENTS.  The
# caller of this script and its ancestors are never included.
scan_strays() {
    local d p comm k v q
    local -A ppid_of=() stepd=() mine=()
    STRAY_STEPS=()
    STRAY_CLIENTS=()
    for d in /proc/[0-9]*; do
        p=${d#/proc/}
        comm=
        read -r comm 2>/dev/null <"$d/comm" || continue
        while read -r k v; do
            if [[ $k == PPid: ]]; then ppid_of[$p]=$v; break; fi
        done 2>/dev/null <"$d/status" || continue
        case $comm in
        slurmstepd | srun | salloc | sattach)
            alive "$p" || continue
            grep -qzxF "SLURM_CONF=$CONF" "$d/environ" 2>/dev/null || continue
            if [[ $comm == slurmstepd ]]; then stepd[$p]=1; else STRAY_CLIENTS+=("$p"); fi
            ;;
        esac
    done
    # never kill ourselves or whoever called us
    q=$$
    while [[ -n $q && $q != 0 && -z ${mine[$q]:-} ]]; do
        mine[$q]=1
        q=${ppid_of[$q]:-}
    done
    local c=()
    for p in "${STRAY_CLIENTS[@]}"; do [[ -n ${mine[$p]:-} ]] || c+=("$p"); done
    STRAY_CLIENTS=("${c[@]}")
    ((${#stepd[@]})) || return 0
    for p in "${!ppid_of[@]}"; do
        [[ -z ${mine[$p]:-} ]] || continue
        q=$p
        while [[ -n $q && $q != 0 && $q != 1 ]]; do
            if [[ -n ${stepd[$q]:-} ]]; then STRAY_STEPS+=("$p"); break; fi
            q=${ppid_of[$q]:-}
        done
    done
}

do_stop() {
    local quiet=${1:-} t0 pids=() p ids name
    t0=$(now_ms)
    [[ -d $DIR ]] || { [[ -n $quiet ]] || log "nothing to stop in $DIR"; return 0; }

    # 1. cancel jobs while the daemons can still clean up properly
    if is_running slurmctld && [[ -r $CONF ]]; then
        ids=$(SLURM_CONF=$CONF timeout 5 "$SQUEUE" -h -o '%A' 2>/dev/null || true)
        if [[ -n $ids ]]; then
            # shellcheck disable=SC2086
            SLURM_CONF=$CONF timeout 5 "$SCANCEL" $ids 2>/dev/null || true
            local deadline=$(($(now_ms) + 5000))
            while [[ -n $(SLURM_CONF=$CONF timeout 5 "$SQUEUE" -h -t R,CG,PD -o '%A' 2>/dev/null || true) ]] &&
                (($(now_ms) < deadline)); do
                sleep 0.2
            done
        fi
    fi

    # 2. daemons: all at once, each takes 1.5-2 s to exit on SIGTERM and
    # none of them needs the others while shutting down
    pids=()
    for name in slurmd slurmctld munged; do
        while read -r p; do
            [[ -n $p ]] && pids+=("$p")
        done < <(
            for f in "$RUN/$name.pid" "$RUN/$name.launch.pid"; do
                [[ -r $f ]] || continue
                p=$(tr -dc '0-9' <"$f" || true)
                [[ -n $p ]] && alive "$p" &&
                    [[ $(cat "/proc/$p/comm" 2>/dev/null || true) == "$name" ]] && echo "$p"
            done | sort -u
        )
    done
    if ((${#pids[@]})); then
        [[ -n $quiet ]] || log "stopping daemons (pid ${pids[*]})"
        kill_wait "${pids[@]}"
    fi

    # 3. job steps outliving slurmd (slurmstepd does not die with slurmd,
    # e.g. after a crash) and clients still waiting for the dead cluster
    scan_strays
    if ((${#STRAY_STEPS[@]})); then
        [[ -n $quiet ]] || log "killing leftover job steps (pid ${STRAY_STEPS[*]})"
        kill -KILL "${STRAY_STEPS[@]}" 2>/dev/null || true
    fi
    if ((${#STRAY_CLIENTS[@]})); then
        [[ -n $quiet ]] || log "stopping leftover srun/salloc (pid ${STRAY_CLIENTS[*]})"
        LOCAL_SLURM_STOP_TIMEOUT=2 kill_wait "${STRAY_CLIENTS[@]}"
    fi

    rm -f "$RUN"/*.pid "$MUNGE_SOCKET" "$MUNGE_SOCKET.lock" 2>/dev/null || true
    if [[ $SOCKDIR == /tmp/lslurm.* && -d $SOCKDIR ]]; then
        rm -rf "$SOCKDIR"
    fi
    rm -f "$DIR/sockdir"
    SOCKDIR=$DIR
    set_sock_paths
    [[ -n $quiet ]] || log "stopped in $(( $(now_ms) - t0 )) ms (logs kept in $LOGD)"
    return 0
}

do_purge() {
    # remove only what `start` created, then DIR itself if it is empty
    rm -rf "${DIR:?}/state" "${DIR:?}/spool" "${DIR:?}/tmp" "${DIR:?}/run" \
        "${DIR:?}/log" "${DIR:?}/munge" "$CONF" "$DIR/plugstack.conf" "$DIR/env.sh"
    rmdir "$DIR" 2>/dev/null || true
}

# ---------------------------------------------------------------- main

cmd=${1:-}
case $cmd in
start)
    [[ $# -eq 2 ]] || usage
    set_paths "$2"
    do_start
    ;;
stop)
    [[ $# -eq 2 || ($# -eq 3 && $3 == --purge) ]] || usage
    if [[ ! -d $2 ]]; then
        log "nothing to stop: '$2' does not exist"
        exit 0
    fi
    set_paths "$2"
    find_tools soft
    do_stop || true
    [[ ${3:-} == --purge ]] && do_purge
    exit 0
    ;;
status)
    [[ $# -eq 2 ]] || usage
    set_paths "$2"
    rc=0
    for n in munged slurmctld slurmd; do
        if p=$(pid_of "$n"); then log "$n running (pid $p)"; else log "$n not running"; rc=1; fi
    done
    exit $rc
    ;;
env)
    [[ $# -eq 2 ]] || usage
    set_paths "$2"
    [[ -r $DIR/env.sh ]] || die "no cluster set up in $DIR"
    print_env
    ;;
*)
    usage
    ;;
esac
