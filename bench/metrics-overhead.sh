#!/usr/bin/env bash
# What the metrics cost: the same 3-node cluster benchmarked without metrics (BEFORE: a server
# built from the commit before them, or this one without --metrics-address) and with them
# (AFTER: --metrics-address on every node, each scraped once a second during the run), rounds
# interleaved so drift of the shared machine hits both alike. Prints one table per workload.
#
#   bench/metrics-overhead.sh BEFORE-SERVER AFTER-SERVER     # e.g. a main build vs out/RaftPS/server/linux-x64/RaftServer
#   ROUNDS=3 DURATION=10 WARMUP=3 CONCURRENCY=64 WORKLOADS=put,get,mixed bench/metrics-overhead.sh ...
set -euo pipefail
cd "$(dirname "$0")/.."
BEFORE=$(realpath "$1"); AFTER=$(realpath "$2")
: "${ROUNDS:=3}" "${DURATION:=10}" "${WARMUP:=3}" "${CONCURRENCY:=64}" "${WORKLOADS:=put,get,mixed}"
BENCH=(dotnet bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll)
WORK=$(mktemp -d "${TMPDIR:-/tmp}/raftps-metrics-bench.XXXXXX")
RESULTS="$WORK/results.jsonl"
PIDS=()
log() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }

stop_all() {
    local pid
    for pid in "${PIDS[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do for _ in $(seq 1 50); do [[ -d /proc/$pid ]] || break; sleep 0.1; done; kill -KILL "$pid" 2>/dev/null || true; done
    PIDS=()
}
trap 'stop_all; rm -rf "$WORK"' EXIT

run_round() { # label server metrics(0|1) round
    local label=$1 server=$2 metrics=$3 round=$4 dir="$WORK/$1-$4" i endpoints="" scrape=""
    mkdir -p "$dir"
    local ports; mapfile -t ports < <("${BENCH[@]}" free-ports --count 6)
    for i in 0 1 2; do echo "$i 127.0.0.1 ${ports[$i]}" >> "$dir/config.conf"; done
    : > "$dir/pids"
    for i in 0 1 2; do
        local extra=()
        if [[ $metrics == 1 ]]; then extra=(--metrics-address "127.0.0.1:${ports[$((i + 3))]}"); scrape+=" http://127.0.0.1:${ports[$((i + 3))]}/metrics"; fi
        (cd "$dir" && exec "$server" "$i" --config config.conf --data-dir "data-$i" --quiet --log-level warning "${extra[@]}" > "node-$i.log" 2>&1 < /dev/null) &
        PIDS+=($!); echo $! >> "$dir/pids"
        endpoints+="${endpoints:+,}127.0.0.1:${ports[$i]}"
    done
    local scraper=""
    if [[ $metrics == 1 ]]; then
        # What a Prometheus with a 1 s scrape interval would do to each node.
        (while true; do for u in $scrape; do curl -s -o /dev/null "$u" || true; done; sleep 1; done) &
        scraper=$!
    fi
    "${BENCH[@]}" run --target raftps --endpoints "$endpoints" --workloads "$WORKLOADS" --concurrency "$CONCURRENCY" \
        --warmup "$WARMUP" --duration "$DURATION" --channels 4 --label "$label" --round "$round" --pids-file "$dir/pids" --json "$RESULTS" --no-header >&2
    [[ -n $scraper ]] && kill "$scraper" 2>/dev/null || true
    stop_all
}

for round in $(seq 1 "$ROUNDS"); do
    log "round $round: before"; run_round before "$BEFORE" 0 "$round"
    log "round $round: after (metrics on, scraped every second)"; run_round after "$AFTER" 1 "$round"
done

python3 - "$RESULTS" <<'PY'
import json, sys, statistics
rows = [json.loads(l) for l in open(sys.argv[1])]
key = lambda r: (r["workload"], r["concurrency"])
for wl in sorted({key(r) for r in rows}):
    print(f"\n### {wl[0]}, C={wl[1]}\n")
    print("| server | rounds (ops/s) | mean ops/s | p50 ms | p99 ms | server µs CPU/op |")
    print("|---|---|---:|---:|---:|---:|")
    means = {}
    for label in ("before", "after"):
        rs = [r for r in rows if key(r) == wl and r["label"] == label]
        if not rs: continue
        ops = [r["ops_per_s"] for r in rs]
        means[label] = statistics.mean(ops)
        cpu = [r["server_cpu_us_per_op"] for r in rs if r.get("server_cpu_us_per_op") is not None]
        print(f"| {label} | {', '.join(f'{o:,.0f}' for o in ops)} | {means[label]:,.0f} | {statistics.mean(r['p50_ms'] for r in rs):.2f} | "
              f"{statistics.mean(r['p99_ms'] for r in rs):.2f} | {statistics.mean(cpu):.1f} |" if cpu else "| - |")
    if len(means) == 2:
        print(f"\nafter / before: {means['after'] / means['before']:.3f}")
PY
