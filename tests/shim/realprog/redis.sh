#!/usr/bin/env bash
# Under kmm exec: redis-server on 127.0.0.1 (a free port), redis-benchmark -n 20000 -q
# against it (bounded in count and time), then a SET/GET check and a clean SHUTDOWN. The
# server's exit stats prove kmm was its malloc (lib.sh). Debian's redis-server links
# libjemalloc.so.2 and calls plain malloc/free/realloc, which the preload overrides: its INFO
# still says mem_allocator:jemalloc (only nallocx and the stats calls reach jemalloc).
# Usage: redis.sh KMM_BINARY [hardened].
set -u
kmm=$1
. "$(dirname "$0")/lib.sh"
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null ||
  { echo "SKIP: redis-server/redis-tools are missing (scripts/setup-debian.sh installs them)"; exit 77; }
dir=$(mktemp -d)
kmm_stats_begin "$dir" "${2:-}"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
"$kmm" exec -- redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" >"$dir/server.log" 2>&1 &
server=$!
pid=$server  # kmm exec execs: the server keeps this pid
cleanup() { kill "$server" 2>/dev/null; wait "$server" 2>/dev/null; rm -rf "$dir"; }
trap cleanup EXIT
for _ in $(seq 1 100); do redis-cli -p "$port" ping >/dev/null 2>&1 && break; sleep 0.1; done
redis-cli -p "$port" ping | grep -q PONG || { echo "FAIL: server did not start"; cat "$dir/server.log"; exit 1; }
timeout 120 redis-benchmark -h 127.0.0.1 -p "$port" -n 20000 -q -t set,get,incr,lpush,rpop,sadd,hset,lrange_100 >"$dir/bench.log" 2>&1 ||
  { echo "FAIL: redis-benchmark"; cat "$dir/bench.log"; exit 1; }
tr '\r' '\n' <"$dir/bench.log" | grep "requests per second"
redis-cli -p "$port" set kmm-key kmm-value >/dev/null
[ "$(redis-cli -p "$port" get kmm-key)" = "kmm-value" ] || { echo "FAIL: GET"; exit 1; }
[ "$(redis-cli -p "$port" dbsize)" -ge 1 ] || exit 1
echo "redis $(redis-cli -p "$port" info memory | tr -d '\r' | grep '^mem_allocator:')"
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
wait "$server"
rc=$?
server=""
[ $rc -eq 0 ] || { echo "FAIL: redis-server exit $rc"; cat "$dir/server.log"; exit 1; }
echo "redis-server exited cleanly"
grep -q "^=== kmm stats: pid $pid ===" "$dir/kmm-stats" || { echo "FAIL: no kmm stats from redis-server (pid $pid)"; exit 1; }
kmm_stats_check 1 6144 1000  # the heap grew past the boot's 4232 kB (measured 8328 kB, 15112 objects at exit)
