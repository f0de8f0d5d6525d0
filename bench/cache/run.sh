#!/usr/bin/env bash
# bench/cache/run.sh: the cache traffic engine's throughput against memcaslap,
# straight to one loopback memcached (no proxy), measured in the same run.
# Writes bench/cache/results.txt. Called by `make bench`.
#
# Env: BENCH_PORT (default 21990), BENCH_SECONDS per measurement (default 10).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${BENCH_PORT:-21990}"
SECS="${BENCH_SECONDS:-10}"
OUT=bench/cache/results.txt
TMP="$(mktemp -d)"
MC_PID=""
cleanup() {
	if [ -n "$MC_PID" ]; then kill "$MC_PID" 2>/dev/null || true; wait "$MC_PID" 2>/dev/null || true; fi
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

for b in memcached memcaslap /usr/bin/time go; do
	command -v "$b" >/dev/null || { echo "run.sh: $b not found" >&2; exit 1; }
done

# one worker thread, as on the platform notes; loopback only
memcached -u "$(id -un)" -p "$PORT" -l 127.0.0.1 -U 0 -t 1 -m 1024 &
MC_PID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

flush() { exec 3<>/dev/tcp/127.0.0.1/"$PORT"; printf 'flush_all\r\n' >&3; read -r _ <&3; exec 3<&-; }

# memcaslap: 1 thread, concurrency 16, 9:1 get:set, 100-byte values,
# 33-byte keys (the engine's key length), window 10k per concurrency
# (160,000 keys).
printf 'key\n33 33 1\nvalue\n100 100 1\ncmd\n0 0.1\n1 0.9\n' > "$TMP/ms.cfg"
/usr/bin/time -v memcaslap -s "127.0.0.1:$PORT" -T 1 -c 16 -w 10k -F "$TMP/ms.cfg" -X 100 -t "${SECS}s" \
	> "$TMP/ms.out" 2> "$TMP/ms.time"
ms_gets=$(awk '/^cmd_get:/ {print $2}' "$TMP/ms.out")
ms_cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$TMP/ms.time")
ms_rss=$(awk -F': ' '/Maximum resident/ {print $2}' "$TMP/ms.time")
ms_gps=$(awk -v g="$ms_gets" -v c="$ms_cpu" 'BEGIN {printf "%.0f", g/c}')
ms_tps=$(awk '/^Run time/ {for (i=1;i<=NF;i++) if ($i=="TPS:") print $(i+1)}' "$TMP/ms.out")

flush
FIREDRILL_BENCH_MEMCACHED="127.0.0.1:$PORT" go test -run '^$' -bench 'BenchmarkGetSet$|BenchmarkGetSetMux$|BenchmarkMultiGet100$|BenchmarkMetaMultiGet100$|BenchmarkMultiGet100Keyspace5e9' \
	-benchtime "${SECS}s" -count 1 ./traffic/memcache/ \
	> "$TMP/go.out" 2>&1 || { cat "$TMP/go.out" >&2; exit 1; }
metric() { # benchmark unit
	awk -v b="$1" -v u="$2" '$1 ~ "^"b"-" {for (i=2;i<NF;i++) if ($(i+1)==u) print $i}' "$TMP/go.out"
}
go_gps=$(metric BenchmarkGetSetMux gets/cpu-s)
go_gs=$(metric BenchmarkGetSetMux gets/s)
pool_gps=$(metric BenchmarkGetSet gets/cpu-s)
pool_gs=$(metric BenchmarkGetSet gets/s)
multi_ks=$(metric BenchmarkMultiGet100 keys/s)
meta_ks=$(metric BenchmarkMetaMultiGet100 keys/s)
huge_ks=$(metric BenchmarkMultiGet100Keyspace5e9 keys/s)
rss0=$(metric BenchmarkMultiGet100Keyspace5e9 rss-start-kB)
rss1=$(metric BenchmarkMultiGet100Keyspace5e9 rss-end-kB)
ratio=$(awk -v a="$go_gps" -v b="$ms_gps" 'BEGIN {printf "%.2f", a/b}')
best=$(awk -v a="$multi_ks" -v b="$meta_ks" 'BEGIN {print (a>b)?a:b}')
goal=$(awk -v k="$best" 'BEGIN {print (k>=150000)?"MET":"NOT MET"}')
parity=$(awk -v r="$ratio" 'BEGIN {print (r>=1)?"MET":"NOT MET"}')

{
	echo "# bench/cache/results.txt, written by bench/cache/run.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# host: $(nproc) CPUs, $(memcached -V), one memcached worker thread on 127.0.0.1:$PORT, no proxy"
	echo "# machines are shared and noisy: compare the ratio, not absolute figures across runs"
	echo
	echo "per-operation load (16 concurrent, 9:1 get:set, 100-byte values, 160,000 keys, ${SECS}s):"
	echo "  memcaslap  gets=$ms_gets cpu_s=$ms_cpu gets_per_cpu_s=$ms_gps tps=$ms_tps max_rss_kB=$ms_rss"
	echo "  engine     gets_per_cpu_s=$go_gps gets_per_s=$go_gs   (traffic/memcache Mux: 16 callers multiplexed on meta commands; BenchmarkGetSetMux, getrusage of the generator)"
	echo "  engine     gets_per_cpu_s=$pool_gps gets_per_s=$pool_gs   (connection pool, one blocking round trip per op; BenchmarkGetSet, for reference)"
	echo "  ratio engine/memcaslap gets per CPU-second = $ratio   (goal >= 1: $parity)"
	echo
	echo "batched gets (4 concurrent callers, 100 keys per call):"
	echo "  multi-get 'get k1..k100'   keys_per_s=$multi_ks"
	echo "  pipelined meta 'mg k v'    keys_per_s=$meta_ks"
	echo "  goal >= 150000 keys/s: $goal (best $best)"
	echo
	echo "generator memory over a 5,000,000,000-record keyspace (multi-get, Zipf 0.99, O(1) sampler):"
	echo "  keys_per_s=$huge_ks rss_start_kB=$rss0 rss_end_kB=$rss1"
	echo
	echo "raw go test output:"
	sed 's/^/  /' "$TMP/go.out"
} > "$OUT"
cat "$OUT"
