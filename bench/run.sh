#!/usr/bin/env bash
# RaftPS vs etcd, side by side on this machine, and docs/benchmarks.md from the results.
#
#   bench/run.sh                 # the full session (about 40 minutes on 2 cores)
#   DURATION=3 WARMUP=1 ROUNDS=1 CONCURRENCY=1,64 bench/run.sh     # a quick look
#
# What it does: builds in Release; installs etcd 3.4 from Debian if it is missing; starts a
# 3-node RaftPS cluster and two 3-member etcd clusters (etcd's usual timers 100/1000 ms, and
# RaftPS's own timer values) on free loopback ports, data on the same disk, fsync on for all;
# preloads 10,000 keys; runs each workload x concurrency against each cluster in turn
# (interleaved), ROUNDS times; a 60 s saturating run per cluster (leader must not change);
# RSS per node idle and under load; fail-over (kill -9 of the leader, 5 times) for each; the
# PowerShell pipeline (Import-Csv | Set-RaftValue) when the module has it; stops every process it
# started, by PID; writes docs/benchmarks.md and docs/benchmarks.svg.
# While one cluster is measured, the others are paused (SIGSTOP; ISOLATE=0 leaves them running):
# idle servers still heartbeat, tick and spin, and on 2 cores that CPU is taken from the cluster
# being measured. A resumed cluster is given its leader back
# (RaftPS.Bench leader) before it is measured.
# Third system (TARGETS default includes it): "dotnext", a 3-node DotNext 6.12 Raft cluster
# (bench/DotNextNode: DotNext.Net.Cluster's TCP transport and WriteAheadLog, serving RaftPS's
# client service, so RaftPS.Bench drives it as "raftps"). DOTNEXT_ELECTION_MS=LOWER-UPPER and
# DOTNEXT_REQUEST_TIMEOUT_MS set its election and Raft RPC timeouts: 300-600 ms and 300 ms by
# default, twice DotNext's own 150-300 / 150, because with DotNext's defaults its leader changed
# under load here (2 of 3 trial runs); empty values keep DotNext's defaults.
#
# Settings (environment): DURATION WARMUP ROUNDS CONCURRENCY WORKLOADS CHANNELS TARGETS SOAK_S
# FAILOVER PIPELINE PIPELINE_MANIFEST RAFTPS_HEARTBEAT_MS RAFTPS_ELECTION_MS DOTNEXT_ELECTION_MS
# DOTNEXT_REQUEST_TIMEOUT_MS ISOLATE OUT KEEP_WORK
# NOTE (a line for the report).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

: "${DURATION:=10}"          # measured seconds per run
: "${WARMUP:=3}"             # warm-up seconds per run (not measured)
: "${ROUNDS:=2}"
: "${CONCURRENCY:=1,16,64,256}"
: "${WORKLOADS:=put,get,mixed}"
: "${CHANNELS:=4}"           # HTTP/2 channels in the client's pool
: "${TARGETS:=raftps etcd etcd-rafttimers dotnext}"
# raftps-tls (not in the default TARGETS): RaftPS with client TLS (--cert-file/--key-file, a CA and node
# certificate made by the module's New-RaftCertificate), no client certificates, no auth: TLS's own cost.
: "${SOAK_S:=60}"            # the saturating run (put, C=256); 0 = skip
: "${FAILOVER:=1}"
: "${PIPELINE:=1}"
: "${OUT:=docs/benchmarks.md}"
: "${ISOLATE:=1}"            # pause the other clusters while one is measured
# RaftPS's default timers, passed explicitly to RaftPS and to the second etcd cluster.
: "${RAFTPS_HEARTBEAT_MS:=50}"
: "${RAFTPS_ELECTION_MS:=250}"
: "${DOTNEXT_ELECTION_MS=300-600}"        # LOWER-UPPER for the dotnext target; empty = DotNext's default (150-300)
: "${DOTNEXT_REQUEST_TIMEOUT_MS=300}"      # its Raft RPC timeout; empty = DotNext's default (150)
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

log "building in Release"
dotnet tool restore >/dev/null
dotnet pwsh -NoProfile -NonInteractive -File ./build.ps1 build
dotnet build bench/RaftPS.Bench/RaftPS.Bench.csproj -c Release -nologo -v q -clp:ErrorsOnly >/dev/null
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
    for name in raftps etcd etcd-rafttimers dotnext; do stop_cluster "$name"; done
    if [[ ${KEEP_WORK:-0} == 1 || $status != 0 ]]; then log "kept $WORK (logs)"; else rm -rf "$WORK"; fi
    exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

declare -A ENDPOINTS KIND

launch() { # name index command...: one node in $WORK/<name>, output to its log, PID kept for stop_cluster
    local name=$1 i=$2; shift 2
    (cd "$WORK/$name" && exec "$@" >> "$WORK/$name/node-$i.log" 2>&1 < /dev/null) &
    echo $! >> "$WORK/$name.pids"
    disown $!   # stopped by PID below; no job-control noise when one is killed
}

start_etcd() { # name heartbeat-ms election-ms
    local name=$1 hb=$2 et=$3 i cluster="" clients=""
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count 6)
    for i in 0 1 2; do cluster+="${cluster:+,}$name-$i=http://127.0.0.1:${ports[$((i * 2 + 1))]}"; done
    mkdir -p "$WORK/$name"
    : > "$WORK/$name.pids"
    for i in 0 1 2; do
        local client=${ports[$((i * 2))]} peer=${ports[$((i * 2 + 1))]}
        launch "$name" "$i" etcd --name "$name-$i" --data-dir "$WORK/$name/data-$i" \
            --listen-client-urls "http://127.0.0.1:$client" --advertise-client-urls "http://127.0.0.1:$client" \
            --listen-peer-urls "http://127.0.0.1:$peer" --initial-advertise-peer-urls "http://127.0.0.1:$peer" \
            --initial-cluster "$cluster" --initial-cluster-token "$name-$$" --initial-cluster-state new \
            --heartbeat-interval "$hb" --election-timeout "$et" \
            --quota-backend-bytes 8589934592 --logger zap --log-level warn
        clients+="${clients:+,}127.0.0.1:$client"
    done
    ENDPOINTS[$name]=$clients; KIND[$name]=etcd
}

start_raftps() { # name heartbeat-ms election-ms [server options...]
    local name=$1 hb=$2 et=$3 i
    local extra=("${@:4}")
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count 3)
    mkdir -p "$WORK/$name"
    local conf="$WORK/$name/config.conf"
    : > "$conf"
    for i in 0 1 2; do echo "$i 127.0.0.1 ${ports[$i]}" >> "$conf"; done
    : > "$WORK/$name.pids"
    local clients=""
    for i in 0 1 2; do
        launch "$name" "$i" "$SERVER" "$i" --config "$conf" --data-dir "$WORK/$name/data-$i" \
            --heartbeat-ms "$hb" --election-timeout-ms "$et" --quiet --log-level warning "${extra[@]}"
        clients+="${clients:+,}127.0.0.1:${ports[$i]}"
    done
    ENDPOINTS[$name]=$clients; KIND[$name]=raftps
}

start_dotnext() { # name
    local name=$1 i
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count 6)
    mkdir -p "$WORK/$name"
    local conf="$WORK/$name/config.conf"
    : > "$conf"
    # ID HOST CLIENT-PORT RAFT-PORT: the fourth column is DotNextNode's own (DotNext's TCP transport).
    for i in 0 1 2; do echo "$i 127.0.0.1 ${ports[$((i * 2))]} ${ports[$((i * 2 + 1))]}" >> "$conf"; done
    : > "$WORK/$name.pids"
    local clients=""
    for i in 0 1 2; do
        launch "$name" "$i" dotnet "$DOTNEXT_NODE" "$i" --config "$conf" --data-dir "$WORK/$name/data-$i" \
            ${DOTNEXT_ELECTION_MS:+--election-ms "$DOTNEXT_ELECTION_MS"} \
            ${DOTNEXT_REQUEST_TIMEOUT_MS:+--request-timeout-ms "$DOTNEXT_REQUEST_TIMEOUT_MS"} --log-level warning
        clients+="${clients:+,}127.0.0.1:${ports[$((i * 2))]}"
    done
    # It speaks RaftPS's client protocol: the benchmark's raftps target drives it.
    ENDPOINTS[$name]=$clients; KIND[$name]=raftps
}

declare -A TLSCA
target_args() { echo --target "${KIND[$1]}" --endpoints "${ENDPOINTS[$1]}" ${TLSCA[$1]:+--tls-ca "${TLSCA[$1]}"}; }

start_raftps_tls() { # name: client TLS with a CA and one node certificate for 127.0.0.1 (New-RaftCertificate)
    local name=$1 pki="$WORK/$1/pki"
    mkdir -p "$pki"
    dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ROOT/out/RaftPS/RaftPS.psd1'; \$ErrorActionPreference = 'Stop'
        New-RaftCertificate CA ca -Path '$pki' | Out-Null
        New-RaftCertificate Node node -HostName 127.0.0.1, localhost -IssuerPath '$pki/ca.pem' -Path '$pki' | Out-Null"
    start_raftps "$name" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" --cert-file "$pki/node.pem" --key-file "$pki/node.key.pem"
    TLSCA[$name]="$pki/ca.pem"
}

ACTIVE=""
focus() { # name: with ISOLATE=1 that cluster runs and every other one is paused
    [[ $ISOLATE == 1 && $1 != "$ACTIVE" ]] || return 0
    local t
    for t in "${LIVE[@]}"; do [[ $t == "$1" ]] || signal_cluster "$t" STOP; done
    signal_cluster "$1" CONT
    # Paused, its timers ran late: a follower may campaign as it resumes (DotNext's did). Let any
    # such election happen (2 s: past every cluster's election timeout) and find the leader.
    if [[ -n $ACTIVE ]]; then
        sleep 2
        "${BENCH[@]}" leader $(target_args "$1") --timeout-s 60 >/dev/null || log "$1: no leader after resuming"
    fi
    ACTIVE=$1
}

# ---------------------------------------------------------------------------------------------
# The clusters
# ---------------------------------------------------------------------------------------------
LOAD_START=$(cut -d' ' -f1-3 /proc/loadavg)
ETCD_VERSION=$(etcd --version | awk '/etcd Version/ {print $3}')
printf '{"kind":"meta","name":"etcd","value":"%s (Debian package), --heartbeat-interval/--election-timeout as labelled, fsync on (default)"}\n' "$ETCD_VERSION" >> "$RESULTS"
printf '{"kind":"meta","name":"RaftPS","value":"%s (git), Release, Native AOT server (out/RaftPS/server/%s/RaftServer), --heartbeat-ms %s --election-timeout-ms %s"}\n' "$(git rev-parse --short HEAD)" "$RID" "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" >> "$RESULTS"
printf '{"kind":"meta","name":"settings","value":"warm-up %s s, measured %s s per run, %s rounds, %s HTTP/2 channels, concurrency %s; %s"}\n' "$WARMUP" "$DURATION" "$ROUNDS" "$CHANNELS" "$CONCURRENCY" \
    "$([[ $ISOLATE == 1 ]] && echo "the other clusters paused (SIGSTOP) while one is measured" || echo "every cluster running throughout (ISOLATE=0)")" >> "$RESULTS"

for t in $TARGETS; do
    case $t in
        raftps)
            if [[ ! -x $SERVER ]]; then log "no $SERVER (build.ps1 build lays it out): skipping RaftPS"; continue; fi
            start_raftps raftps "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" ;;
        raftps-tls)
            if [[ ! -x $SERVER ]]; then log "no $SERVER (build.ps1 build lays it out): skipping RaftPS with TLS"; continue; fi
            start_raftps_tls raftps-tls ;;
        etcd) start_etcd etcd "$ETCD_HEARTBEAT_MS" "$ETCD_ELECTION_MS" ;;
        etcd-rafttimers) start_etcd etcd-rafttimers "$RAFTPS_HEARTBEAT_MS" "$RAFTPS_ELECTION_MS" ;;
        dotnext)
            if [[ ! -f $DOTNEXT_NODE ]]; then log "no $DOTNEXT_NODE: skipping DotNext"; continue; fi
            printf '{"kind":"meta","name":"DotNext","value":"DotNext.Net.Cluster 6.12.0 (bench/DotNextNode, JIT), TCP transport, WriteAheadLog (flush on every commit, 6.12 default), election %s ms, request timeout %s ms"}\n' \
                "${DOTNEXT_ELECTION_MS:-150-300 (default)}" "${DOTNEXT_REQUEST_TIMEOUT_MS:-150 (default)}" >> "$RESULTS"
            start_dotnext dotnext ;;
        *) log "unknown target $t"; exit 2 ;;
    esac
done
LIVE=()
for t in $TARGETS; do
    [[ -n ${KIND[$t]:-} ]] || continue
    log "$t: waiting for a leader on ${ENDPOINTS[$t]}"
    read -r leader term < <("${BENCH[@]}" leader $(target_args "$t") --timeout-s 60)
    [[ -n ${leader:-} ]] || { log "$t: no leader"; exit 1; }
    log "$t: leader is node $leader (term $term)"
    LIVE+=("$t")
done
[[ ${#LIVE[@]} -gt 0 ]] || { log "no cluster started"; exit 1; }
sleep 3
# At rest: a fresh cluster, then the same with the 10,000 keys loaded.
for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase idle --json "$RESULTS"; done
for t in "${LIVE[@]}"; do focus "$t"; "${BENCH[@]}" preload $(target_args "$t"); done
sleep 3
for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase idle-data --json "$RESULTS"; done

# ---------------------------------------------------------------------------------------------
# Throughput and latency: the same cell against each cluster in turn, ROUNDS times.
# ---------------------------------------------------------------------------------------------
IFS=',' read -r -a WL <<< "$WORKLOADS"
IFS=',' read -r -a CS <<< "$CONCURRENCY"
header=1
for round in $(seq 1 "$ROUNDS"); do
    for w in "${WL[@]}"; do
        for c in "${CS[@]}"; do
            for t in "${LIVE[@]}"; do
                focus "$t"
                "${BENCH[@]}" run $(target_args "$t") --label "$t" --workloads "$w" --concurrency "$c" \
                    --warmup "$WARMUP" --duration "$DURATION" --channels "$CHANNELS" --no-preload \
                    --pids-file "$WORK/$t.pids" --round "$round" --json "$RESULTS" $([[ $header == 1 ]] || echo --no-header)
                header=0
            done
        done
    done
done

if [[ $SOAK_S != 0 ]]; then
    for t in "${LIVE[@]}"; do
        focus "$t"
        log "$t: ${SOAK_S} s saturating run (put, C=256): the leader must not change"
        "${BENCH[@]}" run $(target_args "$t") --label "$t" --workloads put --concurrency 256 --warmup "$WARMUP" \
            --duration "$SOAK_S" --channels "$CHANNELS" --no-preload --pids-file "$WORK/$t.pids" --round 0 \
            --kind soak --json "$RESULTS" --no-header
    done
fi
for t in "${LIVE[@]}"; do "${BENCH[@]}" rss --pids-file "$WORK/$t.pids" --label "$t" --phase end --json "$RESULTS"; done
[[ -n ${KIND[raftps]:-} ]] && focus raftps

# ---------------------------------------------------------------------------------------------
# The PowerShell pipeline: Import-Csv of 10,000 rows into Set-RaftValue.
# ---------------------------------------------------------------------------------------------
if [[ $PIPELINE == 1 && -n ${KIND[raftps]:-} ]]; then
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
        # HOOK: the module's Set-RaftValue has not landed on this branch yet: it is measured as soon as
        # out/RaftPS/RaftPS.psd1 exports it (or point PIPELINE_MANIFEST at a build that does).
        log "PowerShell pipeline skipped: $MANIFEST has no Set-RaftValue yet"
    fi
fi

# ---------------------------------------------------------------------------------------------
# Fail-over: kill -9 the leader, 5 times per cluster (the killed node is restarted each time).
# ---------------------------------------------------------------------------------------------
if [[ $FAILOVER == 1 ]]; then
    for t in "${LIVE[@]}"; do
        focus "$t"
        log "$t: fail-over"
        "${BENCH[@]}" failover $(target_args "$t") --label "$t" --pids-file "$WORK/$t.pids" --repeat 5 \
            --log-dir "$WORK/$t" --json "$RESULTS" || log "$t: fail-over did not recover every round"
    done
fi

for t in "${LIVE[@]}"; do stop_cluster "$t"; done

# ---------------------------------------------------------------------------------------------
# The report
# ---------------------------------------------------------------------------------------------
cat > "$WORK/commands.txt" <<EOF
# from the repository root, on a machine with the .NET SDK 10 (etcd is installed if missing)
DURATION=$DURATION WARMUP=$WARMUP ROUNDS=$ROUNDS CONCURRENCY=$CONCURRENCY WORKLOADS=$WORKLOADS CHANNELS=$CHANNELS bench/run.sh

# what it runs for each cell (one process per run; --pids-file gives the servers' CPU and RSS):
dotnet bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll run --target raftps|etcd --endpoints 127.0.0.1:P0,127.0.0.1:P1,127.0.0.1:P2 \\
    --workloads put|get|mixed --concurrency C --warmup $WARMUP --duration $DURATION --channels $CHANNELS --no-preload --pids-file PIDS --json results.jsonl
# RaftPS nodes (the Native AOT server that dotnet pwsh ./build.ps1 build lays out):
out/RaftPS/server/$RID/RaftServer ID --config config.conf --data-dir DIR --heartbeat-ms $RAFTPS_HEARTBEAT_MS --election-timeout-ms $RAFTPS_ELECTION_MS --quiet --log-level warning
# DotNext members (TARGETS with dotnext; config lines "ID 127.0.0.1 CLIENT-PORT RAFT-PORT"):
dotnet bench/DotNextNode/bin/Release/net10.0/DotNextNode.dll ID --config config.conf --data-dir DIR --log-level warning${DOTNEXT_ELECTION_MS:+ --election-ms $DOTNEXT_ELECTION_MS}${DOTNEXT_REQUEST_TIMEOUT_MS:+ --request-timeout-ms $DOTNEXT_REQUEST_TIMEOUT_MS}
# etcd members (and again with --heartbeat-interval $RAFTPS_HEARTBEAT_MS --election-timeout $RAFTPS_ELECTION_MS for etcd-rafttimers):
etcd --name etcd-I --data-dir DIR --listen-client-urls http://127.0.0.1:C --advertise-client-urls http://127.0.0.1:C \\
    --listen-peer-urls http://127.0.0.1:P --initial-advertise-peer-urls http://127.0.0.1:P --initial-cluster ... --initial-cluster-state new \\
    --heartbeat-interval $ETCD_HEARTBEAT_MS --election-timeout $ETCD_ELECTION_MS --quota-backend-bytes 8589934592 --logger zap --log-level warn
# fail-over:
dotnet bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll failover --target raftps|etcd --endpoints ... --pids-file PIDS --repeat 5
EOF
NOTES="$WORK/notes.md"
{
    [[ -f $ROOT/bench/notes.md ]] && cat "$ROOT/bench/notes.md"
    echo
    echo "Load average (1, 5, 15 min) when this session started: $LOAD_START; when it ended: $(cut -d' ' -f1-3 /proc/loadavg)."
    echo "On 2 cores, anything above about 2 means other processes were competing with the clusters and the client."
    [[ -n ${NOTE:-} ]] && { echo; echo "$NOTE"; }
} > "$NOTES"
mkdir -p "$(dirname "$OUT")"
cp "$RESULTS" "${OUT%.md}.jsonl"
"${BENCH[@]}" report --results "${OUT%.md}.jsonl" --out "$OUT" --svg "${OUT%.md}.svg" --baseline raftps \
    --commands "$WORK/commands.txt" --notes "$NOTES"
log "done: $OUT"
