#!/usr/bin/env bash
# Interleaved A/B of RaftPS builds or settings on one machine: in each round every variant gets a fresh
# 3-node cluster of its own, measured alone, so a machine that drifts between fast and slow phases
# (docs/benchmarks.md) touches all variants alike. Prints one line per cell (the bench's columns: ops/s,
# latencies, then client and server CPU µs per request) and, per variant at the end, the means, the median
# and the range of ops/s.
#
#   VARIANTS="name:mode[:ENV=VAL,ENV=VAL] ..."   mode: plain | ctls (client TLS) | tls (client and peer TLS);
#                                                 ENV is passed to the nodes; SERVER=path picks another build;
#                                                 each ARG=word is added to the nodes' command line;
#                                                 CLIENT=dir runs the RaftPS.Bench.dll in dir (another client build)
#   ROUNDS=3 CONC=64 WORKLOADS=get,put DURATION=5 WARMUP=2 CONNECTIONS=2 HEARTBEAT_MS=50 ELECTION_MS=250
#   RUNARGS="..."                                 more words for the bench's run, e.g. "--value-bytes 1048576 --keys 64"
#   WORKLOADS=failover                            instead of a run: kill -9 of the leader FAILOVER_REPEAT (5) times per
#                                                 round (the bench's failover command); prints every fail-over's ms and
#                                                 per variant the median of all of them
#   e.g. VARIANTS="plain:plain tls:tls" ROUNDS=10 bash bench/ab.sh
#        VARIANTS="old:plain:SERVER=/tmp/old/RaftServer new:plain" bash bench/ab.sh
#        VARIANTS="s1000:plain s128:plain:ARG=--max-streams-per-connection,ARG=128" bash bench/ab.sh
#        VARIANTS="old:plain:CLIENT=/tmp/bench-old new:plain" CONC=64,1024 bash bench/ab.sh
#        VARIANTS="s64m:plain s1g:plain:ARG=--snapshot-log-bytes,ARG=1073741824" CONC=16 WORKLOADS=put \
#            RUNARGS="--value-bytes 1048576 --keys 64" bash bench/ab.sh
#        VARIANTS="old:plain:SERVER=/tmp/old/RaftServer new:plain" WORKLOADS=failover ROUNDS=3 bash bench/ab.sh
# Needs `dotnet pwsh ./build.ps1 build` first (the server in out/, the module for the certificates, the bench).
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
: "${VARIANTS:?set VARIANTS, e.g. VARIANTS=\"plain:plain tls:tls\"}"
: "${ROUNDS:=3}" "${CONC:=64}" "${WORKLOADS:=get,put}" "${DURATION:=5}" "${WARMUP:=2}" "${CONNECTIONS:=2}"
: "${HEARTBEAT_MS:=50}" "${ELECTION_MS:=250}" "${FAILOVER_REPEAT:=5}"
DEFAULT_SERVER="$ROOT/out/RaftPS/server/linux-x64/RaftServer"
BENCH=(dotnet "$ROOT/bench/RaftPS.Bench/bin/Release/net10.0/RaftPS.Bench.dll")
WORK=$(mktemp -d /tmp/raftps-ab.XXXXXX)
PIDS=()
# The failover command restarts the nodes it kills and writes their new PIDs into the cluster's pids file.
stop_nodes() { # pids-file
    if [[ -f ${1:-} ]]; then kill $(cat "$1") 2>/dev/null || true; fi
    if ((${#PIDS[@]})); then
        kill "${PIDS[@]}" 2>/dev/null || true
        wait "${PIDS[@]}" 2>/dev/null || true
    fi
    PIDS=()
}
CLUSTER_PIDS=
cleanup() { stop_nodes "$CLUSTER_PIDS"; rm -rf "$WORK"; }
trap cleanup EXIT

if [[ " $VARIANTS " == *:tls* || " $VARIANTS " == *:ctls* ]]; then
    dotnet pwsh -NoProfile -NonInteractive -Command "Import-Module '$ROOT/out/RaftPS/RaftPS.psd1'; \$ErrorActionPreference = 'Stop'
        New-RaftCertificate CA ca -Path '$WORK/pki' | Out-Null
        foreach (\$id in 0..2) { New-RaftCertificate Node node-\$id -HostName 127.0.0.1, localhost -NodeId \$id -IssuerPath '$WORK/pki/ca.pem' -Path '$WORK/pki' | Out-Null }"
fi

for ((round = 1; round <= ROUNDS; round++)); do
    for variant in $VARIANTS; do
        IFS=: read -r name mode envs <<< "$variant"
        dir="$WORK/$name-$round"; mkdir -p "$dir"
        server=$DEFAULT_SERVER; nodeenv=(); nodeargs=(); client=("${BENCH[@]}")
        for kv in ${envs//,/ }; do
            case $kv in
                SERVER=*) server=${kv#SERVER=} ;;
                CLIENT=*) client=(dotnet "${kv#CLIENT=}/RaftPS.Bench.dll") ;;
                ARG=*) nodeargs+=("${kv#ARG=}") ;;
                *) nodeenv+=("$kv") ;;
            esac
        done
        mapfile -t ports < <("${BENCH[@]}" free-ports --count 3)
        for i in 0 1 2; do echo "$i 127.0.0.1 ${ports[$i]}"; done > "$dir/config.conf"
        PIDS=()
        CLUSTER_PIDS="$dir/pids"
        for i in 0 1 2; do
            tls=()
            case $mode in
                plain) ;;
                ctls) tls=(--cert-file "$WORK/pki/node-$i.pem" --key-file "$WORK/pki/node-$i.key.pem") ;;
                tls) tls=(--cert-file "$WORK/pki/node-$i.pem" --key-file "$WORK/pki/node-$i.key.pem" --peer-cert-file "$WORK/pki/node-$i.pem"
                          --peer-key-file "$WORK/pki/node-$i.key.pem" --peer-ca-file "$WORK/pki/ca.pem") ;;
                *) echo "unknown mode '$mode' in '$variant' (plain, ctls, tls)" >&2; exit 2 ;;
            esac
            env "${nodeenv[@]}" "$server" "$i" --config "$dir/config.conf" --data-dir "$dir/data-$i" --heartbeat-ms "$HEARTBEAT_MS" \
                --election-timeout-ms "$ELECTION_MS" --quiet --log-level warning "${tls[@]}" "${nodeargs[@]}" > "$dir/node-$i.log" 2>&1 &
            PIDS+=($!)
            echo $! >> "$dir/pids"
        done
        endpoints="127.0.0.1:${ports[0]},127.0.0.1:${ports[1]},127.0.0.1:${ports[2]}"
        ca=(); [[ $mode != plain ]] && ca=(--tls-ca "$WORK/pki/ca.pem")
        "${BENCH[@]}" leader --target raftps --endpoints "$endpoints" "${ca[@]}" --timeout-s 30 > /dev/null
        if [[ $WORKLOADS == failover ]]; then
            "${client[@]}" failover --target raftps --endpoints "$endpoints" "${ca[@]}" --pids-file "$dir/pids" --label "$name" \
                --repeat "$FAILOVER_REPEAT" --log-dir "$dir" 2>&1 | grep -v '^{' | tee -a "$WORK/failovers" || true
        else
            "${client[@]}" run --target raftps --endpoints "$endpoints" "${ca[@]}" --workloads "$WORKLOADS" --concurrency "$CONC" \
                --warmup "$WARMUP" --duration "$DURATION" --connections "$CONNECTIONS" --pids-file "$dir/pids" --label "$name" ${RUNARGS:-} \
                --no-header 2>&1 | grep -v '^{' | tee -a "$WORK/cells"
        fi
        stop_nodes "$dir/pids"
    done
done

if [[ $WORKLOADS == failover ]]; then
    echo "over $ROUNDS round(s) of $FAILOVER_REPEAT: variant  fail-overs (ms, sorted)  median  (rounds without a write)"
    # "NAME fail-over 2/5: killed node 1 (...), first write after 61 ms, ..." or "..., NO write within 20 s, ..."
    awk '/ fail-over [0-9]+\/[0-9]+:/ { v = $1; if (match($0, /first write after [0-9]+ ms/)) { split(substr($0, RSTART, RLENGTH), w, " "); ms[v] = ms[v] " " w[4] } else lost[v]++; seen[v] = 1 }
        END { for (v in seen) print v, ms[v], "|", lost[v] + 0 }' "$WORK/failovers" | while read -r v rest; do
        values=$(tr ' ' '\n' <<< "${rest%|*}" | grep -E '^[0-9]+$' | sort -n | tr '\n' ' ')
        n=$(wc -w <<< "$values"); median=n/a
        if ((n > 0)); then
            read -r -a a <<< "$values"
            median=$(( n % 2 ? a[n / 2] : (a[n / 2 - 1] + a[n / 2]) / 2 ))
        fi
        printf '%-12s %s  median %s ms  (%s)\n' "$v" "$values" "$median" "${rest##*| }"
    done
    exit 0
fi

echo "over $ROUNDS round(s): variant workload C  mean ops/s  client µs/op  server µs/op  (ops/s: median, lowest-highest)"
grep -E '^\S+ +raftps ' "$WORK/cells" | awk '{k=$1" "$3" "$4; n[k]++; o[k]+=$5; c[k]+=$13; s[k]+=$14; v[k, n[k]]=$5}
    END {
        for (k in n) {
            # the rounds of a cell sorted (insertion sort: mawk has no asort), for the median and the range
            for (i = 2; i <= n[k]; i++) for (j = i; j > 1 && v[k, j - 1] > v[k, j]; j--) { t = v[k, j]; v[k, j] = v[k, j - 1]; v[k, j - 1] = t }
            m = n[k] % 2 ? v[k, (n[k] + 1) / 2] : (v[k, n[k] / 2] + v[k, n[k] / 2 + 1]) / 2
            printf "%-24s %9.0f %8.1f %8.1f   (%.0f, %.0f-%.0f)\n", k, o[k]/n[k], c[k]/n[k], s[k]/n[k], m, v[k, 1], v[k, n[k]]
        }
    }' | sort -k2,2 -k3,3n -k1,1
