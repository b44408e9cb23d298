#!/usr/bin/env bash
# RaftPS, etcd and DotNext side by side on this machine, and docs/benchmarks.md from the results.
#
#   bench/run.sh                              # the full session: every dimension (see docs/benchmarks.md for its length)
#   DIMENSIONS=concurrency bench/run.sh       # one dimension alone (concurrency, connections, nodes, values, keys)
#   DURATION=3 WARMUP=1 ROUNDS=1 CONCURRENCY=1,64 DIMENSIONS=concurrency bench/run.sh     # a quick look
#
# What it does: builds in Release; installs etcd 3.4 from Debian if it is missing; starts a
# 3-node RaftPS cluster, two 3-member etcd clusters (etcd's usual timers 100/1000 ms, and RaftPS's
# own timer values) and a 3-node DotNext cluster on free loopback ports, data on the same disk,
# fsync on for all; preloads 10,000 keys of 256 B; then measures along the dimensions a user scales
# along (DIMENSIONS, each a comma-separated list of the names below), every cell against each
# cluster in turn (interleaved), ROUNDS times, each cell a closed loop of C concurrent requests
# over N HTTP/2 connections per node to the leader:
#   concurrency  put, get, mixed at C = CONCURRENCY (1 to 1,024) over CONNECTIONS connections, every
#                target in TARGETS; plus, when it runs, the full session's extras: a 60 s saturating
#                run per cluster (leader must not change), RSS per node idle and under load,
#                fail-over (kill -9 of the leader, 5 times), the PowerShell pipeline (Import-Csv |
#                Set-RaftValue) when the module has it
#   connections  CONN_WORKLOADS at C = CONN_CONCURRENCY over each of CONN_SWEEP connections per node
#   nodes        a NODES-node cluster (5) of each system beside its 3-node one, NODES_WORKLOADS at
#                C = NODES_CONCURRENCY
#   values       a fresh 3-node cluster of each system: values of VALUE_SIZES bytes (256 B to 1 MiB;
#                keys of their own per size, as many as fit in VALUE_DATA_BYTES, at most 10,000 and at
#                least 64), VALUE_WORKLOADS at C = VALUE_CONCURRENCY
#   keys         a fresh 3-node cluster of each system, alone, preloaded with KEYS_MANY keys
#                (1,000,000) of 256 B by many concurrent writers: RSS per node, bytes per key and RSS
#                against the live data (key + value bytes)
# The dimensions other than concurrency measure DIM_TARGETS (raftps, etcd, dotnext among TARGETS);
# a cell another dimension already measured in this session (same system, workload, C,
# connections, 3 nodes, 256 B) is not measured twice: the report takes it from there.
# Every server it started is stopped by PID; it writes docs/benchmarks.md and docs/benchmarks.svg.
# While one cluster is measured, the others are paused (SIGSTOP; ISOLATE=0 leaves them running):
# idle servers still heartbeat, tick and spin, and on 2 cores that CPU is taken from the cluster
# being measured. A resumed cluster is given its leader back (RaftPS.Bench leader) before it is
# measured.
# "dotnext": a DotNext 6.12 Raft cluster (bench/DotNextNode: DotNext.Net.Cluster's TCP transport and
# WriteAheadLog, serving RaftPS's client service, so RaftPS.Bench drives it as "raftps").
# DOTNEXT_ELECTION_MS=LOWER-UPPER and DOTNEXT_REQUEST_TIMEOUT_MS set its election and Raft RPC
# timeouts: 300-600 ms and 300 ms by default, twice DotNext's own 150-300 / 150, because with
# DotNext's defaults its leader changed under load here (2 of 3 trial runs); empty values keep
# DotNext's defaults.
# Connections: the client opens exactly N HTTP/2 connections to each node (one GrpcChannel with its
# own SocketsHttpHandler per connection, no extra connections when streams run out), for every
# system alike (etcd's and DotNext's client services are gRPC too); each run records how many it
# really held to the node it loaded (connections_open).
#
# Settings (environment): DIMENSIONS DURATION WARMUP ROUNDS CONCURRENCY WORKLOADS CONNECTIONS
# (CHANNELS: its older name) TARGETS DIM_TARGETS CONN_SWEEP CONN_CONCURRENCY CONN_WORKLOADS NODES
# NODES_CONCURRENCY NODES_WORKLOADS VALUE_SIZES VALUE_CONCURRENCY VALUE_WORKLOADS VALUE_DATA_BYTES
# KEYS_MANY KEYS_PRELOAD_CONCURRENCY KEYS_PRELOAD_CONNECTIONS ETCD_MAX_REQUEST_BYTES SOAK_S FAILOVER
# PIPELINE PIPELINE_MANIFEST RAFTPS_HEARTBEAT_MS RAFTPS_ELECTION_MS DOTNEXT_ELECTION_MS
# DOTNEXT_REQUEST_TIMEOUT_MS DOTNEXT_VALUES_WAL_CHUNK_BYTES ISOLATE OUT KEEP_WORK BUILD (0: use the binaries already built)
# NOTE (a line for the report).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${DIMENSIONS:=concurrency,connections,nodes,values,keys}"
has_dim() { [[ ",$DIMENSIONS," == *",$1,"* ]]; }
for d in ${DIMENSIONS//,/ }; do
    case $d in concurrency|connections|nodes|values|keys) ;; *) echo "unknown dimension '$d' (concurrency, connections, nodes, values, keys)" >&2; exit 2 ;; esac
done
: "${DURATION:=10}"          # measured seconds per run
: "${WARMUP:=3}"             # warm-up seconds per run (not measured)
: "${ROUNDS:=2}"
: "${CONCURRENCY:=1,16,64,256,1024}"
: "${WORKLOADS:=put,get,mixed}"
: "${CONNECTIONS:=${CHANNELS:-2}}"   # HTTP/2 connections per node (CHANNELS: the older name)
: "${TARGETS:=raftps etcd etcd-rafttimers dotnext}"
# raftps-tls (not in the default TARGETS): RaftPS with client TLS and peer TLS (a CA and a certificate per
# node made by the module's New-RaftCertificate -NodeId), no client certificates, no auth: TLS's own cost.
if [[ -z ${DIM_TARGETS:-} ]]; then
    DIM_TARGETS=""
    for t in raftps etcd dotnext; do [[ " $TARGETS " == *" $t "* ]] && DIM_TARGETS+="${DIM_TARGETS:+ }$t"; done
fi
for t in $DIM_TARGETS; do case $t in raftps|etcd|dotnext) ;; *) echo "DIM_TARGETS: '$t' is none of raftps, etcd, dotnext" >&2; exit 2 ;; esac; done
: "${CONN_SWEEP:=1,2,8}"                 # connections per node, the connections dimension
: "${CONN_CONCURRENCY:=64,1024}"
: "${CONN_WORKLOADS:=put,get}"
: "${NODES:=5}"                          # the bigger cluster of the nodes dimension
: "${NODES_CONCURRENCY:=64,256}"
: "${NODES_WORKLOADS:=put,get}"
: "${VALUE_SIZES:=256,4096,65536,1048576}"
: "${VALUE_CONCURRENCY:=16}"
: "${VALUE_WORKLOADS:=put,get}"
: "${VALUE_DATA_BYTES:=67108864}"        # live data per value size (sets its key count)
: "${KEYS_MANY:=1000000}"
: "${KEYS_PRELOAD_CONCURRENCY:=256}"
: "${KEYS_PRELOAD_CONNECTIONS:=8}"
# etcd refuses requests over --max-request-bytes (1.5 MiB by default): the same limit as RaftPS's
# default (4 MiB + 64 KiB) leaves room for 1 MiB values and more.
: "${ETCD_MAX_REQUEST_BYTES:=4259840}"
# The extras of a full session run with the concurrency dimension unless set.
EXTRAS=$(has_dim concurrency && echo 1 || echo 0)
: "${SOAK_S:=$([[ $EXTRAS == 1 ]] && echo 60 || echo 0)}"   # the saturating run (put, C=256); 0 = skip
: "${FAILOVER:=$EXTRAS}"
: "${PIPELINE:=$EXTRAS}"
: "${OUT:=docs/benchmarks.md}"
: "${ISOLATE:=1}"            # pause the other clusters while one is measured
: "${BUILD:=1}"
# RaftPS's default timers, passed explicitly to RaftPS and to the second etcd cluster.
: "${RAFTPS_HEARTBEAT_MS:=50}"
: "${RAFTPS_ELECTION_MS:=250}"
: "${DOTNEXT_ELECTION_MS=300-600}"        # LOWER-UPPER for the dotnext target; empty = DotNext's default (150-300)
: "${DOTNEXT_REQUEST_TIMEOUT_MS=300}"      # its Raft RPC timeout; empty = DotNext's default (150)
: "${DOTNEXT_VALUES_WAL_CHUNK_BYTES=1048576}" # its WAL chunk in the values dimension; empty = DotNext's default (4 KiB)
ETCD_HEARTBEAT_MS=100
ETCD_ELECTION_MS=1000

export DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1 DOTNET_SKIP_FIRST_TIME_EXPERIENCE=1

log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

# ---------------------------------------------------------------------------------------------
# Build and tools
# ---------------------------------------------------------------------------------------------
if ! command -v etcd >/dev/null || ! command -v etcdctl >/dev/null; then
    log "installing etcd from Debian"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server etcd-client >/dev/null
fi
# The Debian package may start a system etcd on 127.0.0.1:2379; ours use other ports, and it is
# stopped if systemd runs it (it would compete for the CPU).
if command -v systemctl >/dev/null && systemctl is-active --quiet etcd 2>/dev/null; then
    log "stopping the system etcd service"; systemctl stop etcd || true
fi

if [[ $BUILD == 1 ]]; then
    log "building in Release"
    dotnet tool restore >/dev/null
    dotnet pwsh -NoProfile -NonInteractive -File ./build.ps1 build
    dotnet build bench/RaftPS.Bench/RaftPS.Bench.csproj -c Release -nologo -v q -clp:ErrorsOnly >/dev/null
fi
BENCH=(dotnet "$ROOT/bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll")
# The server the module ships: build.ps1 publishes it Native AOT into the module folder, under
# this machine's runtime identifier (linux-x64, linux-arm64).
case "$(uname -m)" in aarch64|arm64) RID=linux-arm64 ;; *) RID=linux-x64 ;; esac
SERVER="$ROOT/out/RaftPS/server/$RID/RaftServer"
# The DotNext target (built with RaftPS.sln above; JIT'd, runs under dotnet).
DOTNEXT_NODE="$ROOT/bench/DotNextNode/bin/Release/net10.0/DotNextNode.dll"

# On the same ext4 disk as the repository (not tmpfs: fsync must be real).
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftps-bench.XXXXXX")
RESULTS="$WORK/results.jsonl"
: > "$RESULTS"
log "work folder $WORK ($(df -T "$WORK" | awk 'NR==2 {print $2}'))"

# ---------------------------------------------------------------------------------------------
# Processes: every server is started here, its PID kept in $WORK/<cluster>.pids (the fail-over
# mode rewrites a line when it restarts a node), and stopped by PID on exit.
# ---------------------------------------------------------------------------------------------
# Only a process whose command line names our work folder: never an unrelated one.
ours() { [[ -r /proc/$1/cmdline ]] && tr '\0' ' ' < "/proc/$1/cmdline" | grep -qF "$WORK"; }

signal_cluster() { # name SIGNAL
    local file="$WORK/$1.pids" pid
    [[ -f $file ]] || return 0
    for pid in $(cat "$file"); do if ours "$pid"; then kill "-$2" "$pid" 2>/dev/null || true; fi; done
}

stop_cluster() { # name
    local file="$WORK/$1.pids" pid
    [[ -f $file ]] || return 0
    signal_cluster "$1" CONT   # a paused process would not act on SIGTERM
    signal_cluster "$1" TERM
    for pid in $(cat "$file"); do
        for _ in $(seq 1 100); do [[ -d /proc/$pid ]] || break; sleep 0.1; done
        if ours "$pid"; then log "pid $pid did not stop in 10 s: SIGKILL"; kill -KILL "$pid" 2>/dev/null || true; fi
    done
    rm -f "$file"
}

cleanup() {
    local status=$?
    local file
    for file in "$WORK"/*.pids; do [[ -f $file ]] && stop_cluster "$(basename "$file" .pids)"; done
    if [[ ${KEEP_WORK:-0} == 1 || $status != 0 ]]; then log "kept $WORK (logs)"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM


# Lists without spaces ("1, 16" = "1,16").
for v in CONCURRENCY WORKLOADS CONN_SWEEP CONN_CONCURRENCY CONN_WORKLOADS NODES_CONCURRENCY NODES_WORKLOADS \
    VALUE_SIZES VALUE_CONCURRENCY VALUE_WORKLOADS; do printf -v "$v" '%s' "${!v// /}"; done
in_list() { [[ ",$2," == *",$1,"* ]]; }   # ITEM LIST

declare -A ENDPOINTS KIND LABEL TLSCA PAUSED MAIN_UP

launch() { # name index command...: one node in $WORK/<name>, output to its log, PID kept for stop_cluster
    local name=$1 i=$2; shift 2
    (cd "$WORK/$name" && exec "$@" >> "$WORK/$name/node-$i.log" 2>&1 < /dev/null) &
    echo $! >> "$WORK/$name.pids"
    disown $!   # stopped by PID below; no job-control noise when one is killed
}

start_etcd() { # name heartbeat-ms election-ms nodes
    local name=$1 hb=$2 et=$3 n=$4 i cluster="" clients=""
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count $((n * 2)))
    for ((i = 0; i < n; i++)); do cluster+="${cluster:+,}$name-$i=http://127.0.0.1:${ports[$((i * 2 + 1))]}"; done
    mkdir -p "$WORK/$name"
    : > "$WORK/$name.pids"
    for ((i = 0; i < n; i++)); do
        local client=${ports[$((i * 2))]} peer=${ports[$((i * 2 + 1))]}
        launch "$name" "$i" etcd --name "$name-$i" --data-dir "$WORK/$name/data-$i" \
            --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
            --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "$cluster" --initial-cluster-token "$name-$$" --initial-cluster-state new \
            --heartbeat-interval "$hb" --election-timeout "$et" --max-request-bytes "$ETCD_MAX_REQUEST_BYTES" \
            --quota-backend-bytes 8589934592 --logger zap --log-level warn
        clients+="${clients:+,}127.0.0.1:$client"
    done
    ENDPOINTS[$name]=$clients; KIND[$name]=etcd
}

start_raftps() { # name heartbeat-ms election-ms nodes [server options...]
    local name=$1 hb=$2 et=$3 n=$4 i
    local extra=("${@:5}")
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count "$n")
    mkdir -p "$WORK/$name"
    local conf="$WORK/$name/config.conf"
    : > "$conf"
    for ((i = 0; i < n; i++)); do echo "$i 127.0.0.1 ${ports[$i]}" >> "$conf"; done
    : > "$WORK/$name.pids"
    local clients=""
    for ((i = 0; i < n; i++)); do
        # {ID} in a server option is this node's id (a certificate of its own, for peer TLS).
        launch "$name" "$i" "$SERVER" "$i" --config "$conf" --data-dir "$WORK/$name/data-$i" \
            --heartbeat-ms "$hb" --election-timeout-ms "$et" --quiet --log-level warning "${extra[@]//\{ID\}/$i}"
        clients+="${clients:+,}127.0.0.1:${ports[$i]}"
    done
    ENDPOINTS[$name]=$clients; KIND[$name]=raftps
}

start_dotnext() { # name nodes
    local name=$1 n=$2 i
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count $((n * 2)))
    mkdir -p "$WORK/$name"
    local conf="$WORK/$name/config.conf"
    : > "$conf"
    # ID HOST CLIENT-PORT RAFT-PORT: the fourth column is DotNextNode's own (DotNext's TCP transport).
    for ((i = 0; i < n; i++)); do echo "$i 127.0.0.1 ${ports[$((i * 2))]} ${ports[$((i * 2 + 1))]}" >> "$conf"; done
    : > "$WORK/$name.pids"
    local clients="" walargs=()
    # Its WAL keeps one memory-mapped file per chunk (default 4 KiB) until a snapshot: the value-size
    # runs (about 64 MiB per size) would hold tens of thousands and hit the open-file limit.
    [[ $name == *-values && -n $DOTNEXT_VALUES_WAL_CHUNK_BYTES ]] && walargs=(--wal-chunk-bytes "$DOTNEXT_VALUES_WAL_CHUNK_BYTES")
    for ((i = 0; i < n; i++)); do
        launch "$name" "$i" dotnet "$DOTNEXT_NODE" "$i" --config "$conf" --data-dir "$WORK/$name/data-$i" \
            ${DOTNEXT_ELECTION_MS:+--election-ms "$DOTNEXT_ELECTION_MS"} \
            ${DOTNEXT_REQUEST_TIMEOUT_MS:+--request-timeout-ms "$DOTNEXT_REQUEST_TIMEOUT_MS"} --log-level warning "${walargs[@]}"
        clients+="${clients:+,}127.0.0.1:${ports[$((i * 2))]}"
    done
    # It speaks RaftPS's client protocol: the benchmark's raftps target drives it.
    ENDPOINTS[$name]=$clients; KIND[$name]=raftps
}

target_args() { echo --target "${KIND[$1]}" --endpoints "${ENDPOINTS[$1]}" ${TLSCA[$1]:+--tls-ca "${TLSCA[$1]}"}; }

start_raftps_tls() { # name: client and peer TLS, a CA and a certificate per node naming 127.0.0.1 and its id (New-RaftCertificate)
    local name=$1 pki="$WORK/$1/pki"
    mkdir -p "$pki"
    dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ROOT/out/RaftPS/RaftPS.psd1'; \$ErrorActionPreference = 'Stop'
        New-RaftCertificate CA ca -Path '$pki' | Out-Null
        foreach (\$id in 0..2) { New-RaftCertificate Node node-\$id -HostName 127.0.0.1, localhost -NodeId \$id -IssuerPath '$pki/ca.pem' -Path '$pki' | Out-Null }"
    start_raftps "$name" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" 3 --cert-file "$pki/node-{ID}.pem" --key-file "$pki/node-{ID}.key.pem" \
        --peer-cert-file "$pki/node-{ID}.pem" --peer-key-file "$pki/node-{ID}.key.pem" --peer-ca-file "$pki/ca.pem"
    TLSCA[$name]="$pki/ca.pem"
}

start_system() { # system cluster-name nodes: one cluster of a system; its runs are labelled with the system
    local system=$1 name=$2 n=$3
    case $system in
        raftps)
            if [[ ! -x $SERVER ]]; then log "no $SERVER (build.ps1 build lays it out): skipping RaftPS"; return 1; fi
            start_raftps "$name" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" "$n" ;;
        raftps-tls)
            if [[ ! -x $SERVER ]]; then log "no $SERVER (build.ps1 build lays it out): skipping RaftPS with TLS"; return 1; fi
            start_raftps_tls "$name" ;;
        etcd) start_etcd "$name" "$ETCD_HEARTBEAT_MS" "$ETCD_ELECTION_MS" "$n" ;;
        etcd-rafttimers) start_etcd "$name" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" "$n" ;;
        dotnext)
            if [[ ! -f $DOTNEXT_NODE ]]; then log "no $DOTNEXT_NODE: skipping DotNext"; return 1; fi
            start_dotnext "$name" "$n" ;;
        *) log "unknown target $system"; exit 2 ;;
    esac
    LABEL[$name]=$system
}

LIVE=()
ACTIVE=""
wait_leader() { # cluster: its leader is found (or the session stops), and it joins LIVE
    local leader term
    log "$1: waiting for a leader on ${ENDPOINTS[$1]}"
    read -r leader term < <("${BENCH[@]}" leader $(target_args "$1") --timeout-s 60) || true
    [[ -n ${leader:-} ]] || { log "$1: no leader"; exit 1; }
    log "$1: leader is node $leader (term $term)"
    LIVE+=("$1")
}

retire() { # cluster: stopped, and out of LIVE
    local keep=() t
    for t in "${LIVE[@]}"; do [[ $t == "$1" ]] || keep+=("$t"); done
    LIVE=(${keep[@]+"${keep[@]}"})
    [[ $ACTIVE != "$1" ]] || ACTIVE=""
    stop_cluster "$1"
    unset "KIND[$1]"
    rm -rf "$WORK/$1"/data-*   # its logs stay
}

focus() { # name: with ISOLATE=1 that cluster runs and every other one is paused
    [[ $ISOLATE == 1 && $1 != "$ACTIVE" ]] || return 0
    local t
    for t in "${LIVE[@]}"; do [[ $t == "$1" ]] || { signal_cluster "$t" STOP; PAUSED[$t]=1; }; done
    signal_cluster "$1" CONT
    # Paused, its timers ran late: a follower may campaign as it resumes (DotNext's did). Let any
    # such election happen (2 s: past every cluster's election timeout) and find the leader.
    if [[ ${PAUSED[$1]:-0} == 1 ]]; then
        sleep 2
        "${BENCH[@]}" leader $(target_args "$1") --timeout-s 60 >/dev/null || log "$1: no leader after resuming"
        PAUSED[$1]=0
    fi
    ACTIVE=$1
}

HEADER=1
FAILED=0
run_cell() { # cluster round dimension workload concurrency connections [run options...]: one measured cell
    local t=$1 round=$2 dim=$3 w=$4 c=$5 n=$6; shift 6
    focus "$t"
    "${BENCH[@]}" run $(target_args "$t") --label "${LABEL[$t]}" --workloads "$w" --concurrency "$c" \
        --warmup "$WARMUP" --duration "$DURATION" --connections "$n" --no-preload --pids-file "$WORK/$t.pids" \
        --round "$round" --dimension "$dim" --json "$RESULTS" "$@" $([[ $HEADER == 1 ]] || echo --no-header) \
        || { log "$t: $dim $w C=$c connections=$n $*: the run failed"; FAILED=$((FAILED + 1)); }
    HEADER=0
}

# A cell the concurrency dimension measures in this session (3 nodes, 256 B, CONNECTIONS): the
# other dimensions take it from there instead of measuring it again.
covered() { # system workload concurrency connections
    has_dim concurrency && [[ -n ${MAIN_UP[$1]:-} && " $TARGETS " == *" $1 "* ]] \
        && in_list "$2" "$WORKLOADS" && in_list "$3" "$CONCURRENCY" && [[ $4 == "$CONNECTIONS" ]]
}

# ---------------------------------------------------------------------------------------------
# The 3-node clusters: TARGETS for the concurrency dimension and the extras, DIM_TARGETS for the
# connections and nodes dimensions (values and keys start fresh clusters of their own).
# ---------------------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ETCD_VERSION=$(etcd --version | awk '/etcd Version/ {print $3}')
printf '{"kind":"meta","name":"etcd","value":"%s (Debian package), --heartbeat-interval/--election-timeout as labelled, --max-request-bytes %s (default 1.5 MiB; raised so 1 MiB values fit with room), fsync on (default)"}\n' "$ETCD_VERSION" "$ETCD_MAX_REQUEST_BYTES" >> "$RESULTS"
printf '{"kind":"meta","name":"RaftPS","value":"%s (git), Release, Native AOT server (out/RaftPS/server/%s/RaftServer), --heartbeat-ms %s --election-timeout-ms %s, default --max-request-bytes (4 MiB + 64 KiB)"}\n' "$(git rev-parse --short HEAD)" "$RID" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" >> "$RESULTS"
printf '{"kind":"meta","name":"settings","value":"dimensions %s; warm-up %s s, measured %s s per run, %s rounds, %s HTTP/2 connections per node, concurrency %s; %s"}\n' \
    "$DIMENSIONS" "$WARMUP" "$DURATION" "$ROUNDS" "$CONNECTIONS" "$CONCURRENCY" \
    "$([[ $ISOLATE == 1 ]] && echo "the other clusters paused (SIGSTOP) while one is measured" || echo "every cluster running throughout (ISOLATE=0)")" >> "$RESULTS"
if [[ " $TARGETS $DIM_TARGETS " == *" dotnext "* ]]; then
    printf '{"kind":"meta","name":"DotNext","value":"DotNext.Net.Cluster 6.12.0 (bench/DotNextNode, JIT), TCP transport, WriteAheadLog (flush on every commit, 6.12 default), election %s ms, request timeout %s ms, gRPC request limit 4 MiB"}\n' \
        "${DOTNEXT_ELECTION_MS:-150-300 (default)}" "${DOTNEXT_REQUEST_TIMEOUT_MS:-150 (default)}" >> "$RESULTS"
fi

MAIN=()
if has_dim concurrency || [[ $SOAK_S != 0 || $FAILOVER == 1 || $PIPELINE == 1 ]]; then MAIN=($TARGETS); fi
if has_dim connections || has_dim nodes; then
    for t in $DIM_TARGETS; do [[ " ${MAIN[*]-} " == *" $t "* ]] || MAIN+=("$t"); done
fi
for t in ${MAIN[@]+"${MAIN[@]}"}; do start_system "$t" "$t" 3 || true; done
for t in ${MAIN[@]+"${MAIN[@]}"}; do [[ -n ${KIND[$t]:-} ]] && { wait_leader "$t"; MAIN_UP[$t]=1; }; done
if [[ ${#MAIN[@]} -gt 0 ]]; then
    [[ ${#LIVE[@]} -gt 0 ]] || { log "no cluster started"; exit 1; }
    sleep 3
    # At rest: a fresh cluster, then the same with the 10,000 keys loaded.
    for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase idle --json "$RESULTS"; done
    for t in "${LIVE[@]}"; do focus "$t"; "${BENCH[@]}" preload $(target_args "$t") --label "$t"; done
    sleep 3
    for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase idle-data --json "$RESULTS"; done
fi

# ---------------------------------------------------------------------------------------------
# Concurrency: the same cell against each cluster in turn, ROUNDS times.
# ---------------------------------------------------------------------------------------------
IFS=',' read -r -a WL <<< "$WORKLOADS"
IFS=',' read -r -a CS <<< "$CONCURRENCY"
if has_dim concurrency; then
    for round in $(seq 1 "$ROUNDS"); do
        for w in "${WL[@]}"; do
            for c in "${CS[@]}"; do
                for t in "${LIVE[@]}"; do
                    [[ " $TARGETS " == *" $t "* ]] && run_cell "$t" "$round" concurrency "$w" "$c" "$CONNECTIONS"
                done
            done
        done
    done
fi

# ---------------------------------------------------------------------------------------------
# Connections per node.
# ---------------------------------------------------------------------------------------------
if has_dim connections; then
    IFS=',' read -r -a XW <<< "$CONN_WORKLOADS"; IFS=',' read -r -a XC <<< "$CONN_CONCURRENCY"; IFS=',' read -r -a XN <<< "$CONN_SWEEP"
    for round in $(seq 1 "$ROUNDS"); do
        for w in "${XW[@]}"; do for c in "${XC[@]}"; do for n in "${XN[@]}"; do
            for t in $DIM_TARGETS; do
                [[ -n ${KIND[$t]:-} ]] || continue
                covered "$t" "$w" "$c" "$n" || run_cell "$t" "$round" connections "$w" "$c" "$n"
            done
        done; done; done
    done
fi

# ---------------------------------------------------------------------------------------------
# A NODES-node cluster of each system beside its 3-node one (the 3-node cells measured beside it
# unless the concurrency dimension has them).
# ---------------------------------------------------------------------------------------------
if has_dim nodes; then
    BIG=()
    for t in $DIM_TARGETS; do
        [[ -n ${KIND[$t]:-} ]] || continue
        start_system "$t" "$t-${NODES}n" "$NODES" && BIG+=("$t-${NODES}n") || true
    done
    for b in ${BIG[@]+"${BIG[@]}"}; do wait_leader "$b"; done
    for b in ${BIG[@]+"${BIG[@]}"}; do focus "$b"; "${BENCH[@]}" preload $(target_args "$b") --label "$b"; done
    IFS=',' read -r -a XW <<< "$NODES_WORKLOADS"; IFS=',' read -r -a XC <<< "$NODES_CONCURRENCY"
    for round in $(seq 1 "$ROUNDS"); do
        for w in "${XW[@]}"; do for c in "${XC[@]}"; do
            for t in $DIM_TARGETS; do
                [[ -n ${KIND[$t]:-} ]] || continue
                covered "$t" "$w" "$c" "$CONNECTIONS" || run_cell "$t" "$round" nodes "$w" "$c" "$CONNECTIONS"
                [[ -n ${KIND[$t-${NODES}n]:-} ]] && run_cell "$t-${NODES}n" "$round" nodes "$w" "$c" "$CONNECTIONS"
            done
        done; done
    done
    for b in ${BIG[@]+"${BIG[@]}"}; do
        "${BENCH[@]}" rss --pids-file "$WORK/$b.pids" --label "$b" --phase nodes --json "$RESULTS"
        retire "$b"
    done
fi

# ---------------------------------------------------------------------------------------------
# The full session's extras on the 3-node clusters: saturating run, RSS, pipeline, fail-over.
# ---------------------------------------------------------------------------------------------
if [[ $SOAK_S != 0 ]]; then
    for t in "${LIVE[@]}"; do
        focus "$t"
        log "$t: ${SOAK_S} s saturating run (put, C=256): the leader must not change"
        "${BENCH[@]}" run $(target_args "$t") --label "$t" --workloads put --concurrency 256 --warmup "$WARMUP" \
            --duration "$SOAK_S" --connections "$CONNECTIONS" --no-preload --pids-file "$WORK/$t.pids" --round 0 \
            --kind soak --json "$RESULTS" --no-header
    done
fi
if [[ ${#LIVE[@]} -gt 0 ]]; then
    for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase end --json "$RESULTS"; done
fi

if [[ $PIPELINE == 1 && -n ${KIND[raftps]:-} ]]; then
    focus raftps
    # PIPELINE_MANIFEST: another build of the module (e.g. a branch not merged yet); default: this one.
    MANIFEST=${PIPELINE_MANIFEST:-$ROOT/out/RaftPS/RaftPS.psd1}
    if [[ -f $MANIFEST ]] && dotnet pwsh -NoProfile -NonInteractive -Command \
        "Import-Module '$MANIFEST'; if (-not (Get-Command Set-RaftValue -ErrorAction SilentlyContinue)) { exit 1 }" >/dev/null 2>&1; then
        CSV="$WORK/kv.csv"
        { echo 'Key,Value'; for i in $(seq 0 9999); do printf 'ps/key-%05d,value-%05d-%0200d\n' "$i" "$i" 0; done; } > "$CSV"
        IFS=',' read -r -a EPS <<< "${ENDPOINTS[raftps]}"
        read -r leader _ < <("${BENCH[@]}" leader $(target_args raftps))
        for round in $(seq 1 "$ROUNDS"); do
            log "PowerShell pipeline, round $round (Import-Csv of 10,000 rows | Set-RaftValue)"
            dotnet pwsh -NoProfile -NonInteractive -File bench/pipeline.ps1 -Manifest "$MANIFEST" \
                -Address "${EPS[$leader]%:*}" -Port "${EPS[$leader]##*:}" -Csv "$CSV" -Round "$round" | tee -a "$RESULTS" \
                || log "PowerShell pipeline failed"
        done
    else
        log "PowerShell pipeline skipped: $MANIFEST has no Set-RaftValue"
    fi
fi

# Fail-over: kill -9 the leader, 5 times per cluster (the killed node is restarted each time).
if [[ $FAILOVER == 1 ]]; then
    for t in "${LIVE[@]}"; do
        focus "$t"
        log "$t: fail-over"
        "${BENCH[@]}" failover $(target_args "$t") --label "$t" --pids-file "$WORK/$t.pids" --repeat 5 \
            --log-dir "$WORK/$t" --json "$RESULTS" || log "$t: fail-over did not recover every round"
    done
fi

for t in ${LIVE[@]+"${LIVE[@]}"}; do retire "$t"; done

# ---------------------------------------------------------------------------------------------
# Value sizes: a fresh 3-node cluster of each system (big values stay out of the clusters above).
# ---------------------------------------------------------------------------------------------
value_keys() { # size: keys of that size holding about VALUE_DATA_BYTES, at most 10,000, at least 64
    local k=$((VALUE_DATA_BYTES / $1))
    ((k > 10000)) && k=10000
    ((k < 64)) && k=64
    echo "$k"
}
if has_dim values; then
    IFS=',' read -r -a XS <<< "$VALUE_SIZES"; IFS=',' read -r -a XW <<< "$VALUE_WORKLOADS"; IFS=',' read -r -a XC <<< "$VALUE_CONCURRENCY"
    VAL=()
    for t in $DIM_TARGETS; do start_system "$t" "$t-values" 3 && VAL+=("$t-values") || true; done
    for v in ${VAL[@]+"${VAL[@]}"}; do wait_leader "$v"; done
    for v in ${VAL[@]+"${VAL[@]}"}; do
        focus "$v"
        for s in "${XS[@]}"; do
            "${BENCH[@]}" preload $(target_args "$v") --value-bytes "$s" --keys "$(value_keys "$s")" \
                --concurrency "$((s >= 65536 ? 16 : 64))" --label "${LABEL[$v]}" \
                || { log "$v: preload of $s-byte values failed"; FAILED=$((FAILED + 1)); }
        done
    done
    for round in $(seq 1 "$ROUNDS"); do
        for s in "${XS[@]}"; do for w in "${XW[@]}"; do for c in "${XC[@]}"; do
            for v in ${VAL[@]+"${VAL[@]}"}; do
                # 256 B at a cell the concurrency dimension measured: taken from there.
                [[ $s == 256 ]] && covered "${LABEL[$v]}" "$w" "$c" "$CONNECTIONS" && continue
                run_cell "$v" "$round" values "$w" "$c" "$CONNECTIONS" --value-bytes "$s" --keys "$(value_keys "$s")"
            done
        done; done; done
    done
    for v in ${VAL[@]+"${VAL[@]}"}; do retire "$v"; done
fi

# ---------------------------------------------------------------------------------------------
# 1,000,000 keys: a fresh 3-node cluster of each system, alone; RSS per node before and after.
# ---------------------------------------------------------------------------------------------
if has_dim keys; then
    for t in $DIM_TARGETS; do
        name="$t-keys"
        start_system "$t" "$name" 3 || continue
        wait_leader "$name"
        sleep 3
        "${BENCH[@]}" rss --pids-file "$WORK/$name.pids" --label "$t" --phase keys-fresh --json "$RESULTS"
        log "$t: preloading $KEYS_MANY keys of 256 B (C=$KEYS_PRELOAD_CONCURRENCY over $KEYS_PRELOAD_CONNECTIONS connections)"
        if "${BENCH[@]}" preload $(target_args "$name") --keys "$KEYS_MANY" --concurrency "$KEYS_PRELOAD_CONCURRENCY" \
            --connections "$KEYS_PRELOAD_CONNECTIONS" --label "$t" --json "$RESULTS"; then
            sleep 5   # at rest: no request in flight, the last writes applied on every node
            "${BENCH[@]}" rss --pids-file "$WORK/$name.pids" --label "$t" --phase keys-loaded --json "$RESULTS"
        else
            log "$t: the preload of $KEYS_MANY keys failed"; FAILED=$((FAILED + 1))
        fi
        retire "$name"
    done
fi

# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
B="dotnet bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll"
cat > "$WORK/commands.txt" <<EOF
# from the repository root, on a machine with the .NET SDK 10 (etcd is installed if missing)
DIMENSIONS=$DIMENSIONS DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONCURRENCY=$CONCURRENCY WORKLOADS=$WORKLOADS CONNECTIONS=$CONNECTIONS \\
    CONN_SWEEP=$CONN_SWEEP CONN_CONCURRENCY=$CONN_CONCURRENCY CONN_WORKLOADS=$CONN_WORKLOADS \\
    NODES=$NODES NODES_CONCURRENCY=$NODES_CONCURRENCY NODES_WORKLOADS=$NODES_WORKLOADS \\
    VALUE_SIZES=$VALUE_SIZES VALUE_CONCURRENCY=$VALUE_CONCURRENCY VALUE_WORKLOADS=$VALUE_WORKLOADS KEYS_MANY=$KEYS_MANY bench/run.sh

# what it runs for each cell (one process per run; --pids-file gives the servers' CPU and RSS):
$B run --target raftps|etcd --endpoints 127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2 \\
    --workloads put|get|mixed --concurrency C --warmup $WARMUP --duration $DURATION --connections N [--value-bytes S --keys K] \\
    --no-preload --pids-file PIDS --dimension D --json results.jsonl
# the 1,000,000 keys (then: RaftPS.Bench.dll rss --pids-file PIDS --label L --phase keys-loaded):
$B preload --target raftps|etcd --endpoints ... --keys $KEYS_MANY --concurrency $KEYS_PRELOAD_CONCURRENCY --connections $KEYS_PRELOAD_CONNECTIONS --json results.jsonl
# RaftPS nodes (the Native AOT server that dotnet pwsh ./build.ps1 build lays out):
out/RaftPS/server/$RID/RaftServer ID --config config.conf --data-dir DIR --heartbeat-ms $RAFTPS_HEARTBEAT_MS --election-timeout-ms $RAFTPS_ELECTION_MS --quiet --log-level warning
# DotNext members (config lines "ID 127.0.0.1 CLIENT-PORT RAFT-PORT"):
dotnet bench/DotNextNode/bin/Release/net10.0/DotNextNode.dll ID --config config.conf --data-dir DIR --log-level warning${DOTNEXT_ELECTION_MS:+ --election-ms $DOTNEXT_ELECTION_MS}${DOTNEXT_REQUEST_TIMEOUT_MS:+ --request-timeout-ms $DOTNEXT_REQUEST_TIMEOUT_MS}
# etcd members (and again with --heartbeat-interval $RAFTPS_HEARTBEAT_MS --election-timeout $RAFTPS_ELECTION_MS for etcd-rafttimers):
etcd --name etcd-I --data-dir DIR --listen-client-urls http://127.0.0.1:C --advertise-client-urls http://127.0.0.1:C \\
    --listen-peer-urls http://127.0.0.1:P --initial-advertise-peer-urls http://127.0.0.1:P --initial-cluster ... --initial-cluster-state new \\
    --heartbeat-interval $ETCD_HEARTBEAT_MS --election-timeout $ETCD_ELECTION_MS --max-request-bytes $ETCD_MAX_REQUEST_BYTES \\
    --quota-backend-bytes 8589934592 --logger zap --log-level warn
# fail-over:
$B failover --target raftps|etcd --endpoints ... --pids-file PIDS --repeat 5
EOF
NOTES="$WORK/notes.md"
{
    [[ -f $ROOT/bench/notes.md ]] && cat "$ROOT/bench/notes.md"
    echo
    echo "Load average (1, 5, 15 min) when this session started: $LOAD_START; when it ended: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "On 2 cores, anything above about 2 means other processes were competing with the clusters and the client."
    [[ $FAILED == 0 ]] || { echo; echo "$FAILED runs or preloads failed in this session (see the log of bench/run.sh)."; }
    [[ -n ${NOTE:-} ]] && { echo; echo "$NOTE"; }
} > "$NOTES"
mkdir -p "$(dirname "$OUT")"
cp "$RESULTS" "${OUT%.md}.jsonl"
"${BENCH[@]}" report --results "${OUT%.md}.jsonl" --out "$OUT" --svg "${OUT%.md}.svg" --baseline raftps \
    --commands "$WORK/commands.txt" --notes "$NOTES"
log "done: $OUT"
