#!/usr/bin/env bash
# bench/cache/run.sh: the cache traffic engine's throughput against memcaslap,
# straight to one loopback memcached (no proxy), measured in the same run.
# Writes bench/cache/results.txt. Called by `make bench`.
#
# Three measures of gets per CPU-second of the generator process:
#   1. memcaslap (the reference), 16 concurrent, 9:1 get:set, 100-byte values;
#   2. the traffic/memcache client alone (go test benchmarks, same load),
#      pooled connections and Mux;
#   3. the whole engine (traffic.New + Run, bench/cache/engine_bench.go) with
#      every key warm so every operation is a hit, pooled and Mux. It needs a
#      database to warm from: a throwaway MariaDB on 127.0.0.1.
# memcaslap runs before and after the Go measurements; the ratios use the
# mean of its two runs.
#
# Env: BENCH_PORT (default 21990; the database uses BENCH_PORT+1),
# BENCH_SECONDS per measurement (default 10), ENGINE_RATE (default 1000000
# operations/s: above capacity, so the open-loop pacer always has an
# operation due and waits only for a free worker), ENGINE_INFLIGHT (16).
set -euo pipefail
cd "$(dirname "$0")/../.."
PORT="${BENCH_PORT:-21990}"
DB_PORT=$((PORT + 1))
SECS="${BENCH_SECONDS:-10}"
RATE="${ENGINE_RATE:-1000000}"
INFLIGHT="${ENGINE_INFLIGHT:-16}"
OUT=bench/cache/results.txt
TMP="$(mktemp -d)"
MC_PID=""
DB_PID=""
stop() { # pid: TERM, then KILL after 20 s
	local pid=$1
	kill "$pid" 2>/dev/null || return 0
	for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
	kill -9 "$pid" 2>/dev/null || true
	wait "$pid" 2>/dev/null || true
}
cleanup() {
	if [ -n "$MC_PID" ]; then stop "$MC_PID"; fi
	if [ -n "$DB_PID" ]; then stop "$DB_PID"; fi
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

for b in memcached memcaslap /usr/bin/time go mariadbd mariadb-install-db mariadb; do
	command -v "$b" >/dev/null || { echo "run.sh: $b not found (apt-get install memcached libmemcached-tools time mariadb-server)" >&2; exit 1; }
done
ME="$(id -un)"

# one worker thread, as on the platform notes; loopback only
memcached -u "$ME" -p "$PORT" -l 127.0.0.1 -U 0 -t 1 -m 1024 &
MC_PID=$!
for _ in $(seq 50); do (exec 3<>/dev/tcp/127.0.0.1/"$PORT") 2>/dev/null && break; sleep 0.1; done

# the engine's database: a fresh data directory, loopback only, no binlog
mariadb-install-db --no-defaults --datadir="$TMP/db" --user="$ME" --auth-root-authentication-method=normal \
	--skip-test-db > "$TMP/db-install.log" 2>&1 || { cat "$TMP/db-install.log" >&2; exit 1; }
mariadbd --no-defaults --datadir="$TMP/db" --socket="$TMP/db.sock" --pid-file="$TMP/db.pid" \
	--port="$DB_PORT" --bind-address=127.0.0.1 --user="$ME" --skip-log-bin \
	--innodb-buffer-pool-size=256M --innodb-flush-log-at-trx-commit=0 > "$TMP/db.log" 2>&1 &
DB_PID=$!
for _ in $(seq 300); do
	mariadb --no-defaults -S "$TMP/db.sock" -uroot -e 'SELECT 1' >/dev/null 2>&1 && break
	kill -0 "$DB_PID" 2>/dev/null || { cat "$TMP/db.log" >&2; exit 1; }
	sleep 0.1
done
mariadb --no-defaults -S "$TMP/db.sock" -uroot -e "CREATE DATABASE firedrill;
	CREATE USER 'bench'@'127.0.0.1' IDENTIFIED BY 'bench';
	GRANT ALL ON firedrill.* TO 'bench'@'127.0.0.1';"
DSN="bench:bench@tcp(127.0.0.1:$DB_PORT)/firedrill"

flush() { exec 3<>/dev/tcp/127.0.0.1/"$PORT"; printf 'flush_all\r\n' >&3; read -r _ <&3; exec 3<&-; }

# memcaslap: 1 thread, concurrency 16, 9:1 get:set, 100-byte values,
# 33-byte keys (the engine's key length), window 10k per concurrency
# (160,000 keys).
printf 'key\n33 33 1\nvalue\n100 100 1\ncmd\n0 0.1\n1 0.9\n' > "$TMP/ms.cfg"
memcaslap_run() { # n
	/usr/bin/time -v memcaslap -s "127.0.0.1:$PORT" -T 1 -c 16 -w 10k -F "$TMP/ms.cfg" -X 100 -t "${SECS}s" \
		> "$TMP/ms$1.out" 2> "$TMP/ms$1.time"
	local gets cpu ops
	gets=$(awk '/^cmd_get:/ {print $2}' "$TMP/ms$1.out")
	ops=$(awk '/^Run time/ {for (i=1;i<=NF;i++) if ($i=="Ops:") print $(i+1)}' "$TMP/ms$1.out")
	cpu=$(awk -F': ' '/User time/ {u=$2} /System time/ {s=$2} END {print u+s}' "$TMP/ms$1.time")
	echo "gets=$gets ops=$ops cpu_s=$cpu gets_per_cpu_s=$(awk -v g="$gets" -v c="$cpu" 'BEGIN {printf "%.0f", g/c}') ops_per_cpu_s=$(awk -v g="$ops" -v c="$cpu" 'BEGIN {printf "%.0f", g/c}') tps=$(awk '/^Run time/ {for (i=1;i<=NF;i++) if ($i=="TPS:") print $(i+1)}' "$TMP/ms$1.out") max_rss_kB=$(awk -F': ' '/Maximum resident/ {print $2}' "$TMP/ms$1.time")"
}
kv() { # line key
	tr ' ' '\n' <<<"$1" | awk -F= -v k="$2" '$1==k {print $2}'
}
ms1=$(memcaslap_run 1)

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

# the whole engine: seed (first run only) and warm every key, then replay
go build -o "$TMP/engine_bench" ./bench/cache/
engine_run() { # label extra-flags...
	local label=$1
	shift
	"$TMP/engine_bench" -memcached "127.0.0.1:$PORT" -dsn "$DSN" -keys 160000 -value 100 \
		-rate "$RATE" -inflight "$INFLIGHT" -conns 16 -duration "${SECS}s" \
		-cpuprofile "$TMP/$label.prof" -label "$label" "$@" 2> "$TMP/$label.err" \
		|| { cat "$TMP/$label.err" >&2; exit 1; }
}
# "default" is the engine exactly as a drill gets it (traffic.NewConfig:
# the Mux client); the pool is the other client path
eng_mux=$(engine_run default)
eng_pool=$(engine_run engine-pool -mux=false)

ms2=$(memcaslap_run 2)

ms_gps=$(awk -v a="$(kv "$ms1" gets_per_cpu_s)" -v b="$(kv "$ms2" gets_per_cpu_s)" 'BEGIN {printf "%.0f", (a+b)/2}')
ms_ops=$(awk -v a="$(kv "$ms1" ops_per_cpu_s)" -v b="$(kv "$ms2" ops_per_cpu_s)" 'BEGIN {printf "%.0f", (a+b)/2}')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN {printf "%.2f", a/b}'; }
met() { awk -v r="$1" 'BEGIN {print (r>=1)?"MET":"NOT MET"}'; }
met12() { awk -v r="$1" 'BEGIN {print (r>=1.2)?"MET":"NOT MET"}'; }
ratio=$(ratio "$go_gps" "$ms_gps")
pool_ratio=$(ratio "$pool_gps" "$ms_gps")
ep_gps=$(kv "$eng_pool" gets_per_cpu_s)
em_gps=$(kv "$eng_mux" gets_per_cpu_s)
ep_ratio=$(ratio "$ep_gps" "$ms_gps")
em_ratio=$(ratio "$em_gps" "$ms_gps")
ep_strict=$(ratio "$ep_gps" "$ms_ops")
em_strict=$(ratio "$em_gps" "$ms_ops")
best=$(awk -v a="$multi_ks" -v b="$meta_ks" 'BEGIN {print (a>b)?a:b}')
goal=$(awk -v k="$best" 'BEGIN {print (k>=150000)?"MET":"NOT MET"}')

hot() { # label: the engine's hot spots (cumulative), from its CPU profile
	go tool pprof -top -cum -nodecount 30 "$TMP/engine_bench" "$TMP/$1.prof" 2>/dev/null \
		| awk 'NR<=5 || /traffic\.|memcache\.|syscall\.(read|write)$|Syscall6|findRunnable|hdrhistogram|context\.With|selectgo|netpoll/' \
		| sed 's/^/    /'
}

{
	echo "# bench/cache/results.txt, written by bench/cache/run.sh on $(date -u +%Y-%m-%dT%H:%M:%SZ)"
	echo "# host: $(nproc) CPUs, $(memcached -V), one memcached worker thread on 127.0.0.1:$PORT, no proxy"
	echo "# machines are shared and noisy: compare the ratios (same run), not absolute figures across runs"
	echo
	echo "per-operation load (16 concurrent, 9:1 get:set, 100-byte values, 160,000 keys, ${SECS}s):"
	echo "  memcaslap #1  $ms1"
	echo "  memcaslap #2  $ms2   (run after the Go measurements)"
	echo "  memcaslap     gets_per_cpu_s=$ms_gps ops_per_cpu_s=$ms_ops   (mean of the two runs)"
	echo "  client Mux    gets_per_cpu_s=$go_gps gets_per_s=$go_gs   (traffic/memcache Mux: 16 callers multiplexed on meta commands; BenchmarkGetSetMux, getrusage of the generator)"
	echo "  client pool   gets_per_cpu_s=$pool_gps gets_per_s=$pool_gs   (connection pool, one blocking round trip per op; BenchmarkGetSet)"
	echo "  ratio client/memcaslap gets per CPU-second: Mux $ratio ($(met "$ratio")), pool $pool_ratio ($(met "$pool_ratio"))"
	echo
	echo "whole engine (traffic.New + Run, bench/cache/engine_bench.go; 160,000 keys all warm so every fetch is a hit,"
	echo "100-byte entries, $INFLIGHT operations in flight, open-loop rate $RATE/s, ${SECS}s; CPU = getrusage of the process"
	echo "from the start of traffic to the end of Run):"
	echo "  $eng_mux"
	echo "  $eng_pool"
	echo "  ratio engine/memcaslap gets per CPU-second (goal: default >= 1.2):"
	echo "    default  $em_ratio ($(met12 "$em_ratio"))   strict, per memcaslap operation (every op a get): $em_strict ($(met12 "$em_strict"))   (the Mux client)"
	echo "    pool     $ep_ratio ($(met "$ep_ratio"))   strict, per memcaslap operation (every op a get): $ep_strict ($(met "$ep_strict"))"
	echo "  (the engine's gets are all hits and it makes no sets; memcaslap's ops are 9 gets to 1 set)"
	echo
	echo "batched gets (4 concurrent callers, 100 keys per call):"
	echo "  multi-get 'get k1..k100'   keys_per_s=$multi_ks"
	echo "  pipelined meta 'mg k v'    keys_per_s=$meta_ks"
	echo "  goal >= 150000 keys/s: $goal (best $best)"
	echo
	echo "generator memory over a 5,000,000,000-record keyspace (multi-get, Zipf 0.99, O(1) sampler):"
	echo "  keys_per_s=$huge_ks rss_start_kB=$rss0 rss_end_kB=$rss1"
	echo
	echo "engine hot spots, default (Mux) (pprof -top -cum, traffic window):"
	hot default
	echo "engine hot spots, pool:"
	hot engine-pool
	echo
	echo "raw go test output:"
	sed 's/^/  /' "$TMP/go.out"
} > "$OUT"
cat "$OUT"
