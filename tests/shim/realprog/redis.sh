#!/usr/bin/env bash
# Under kmm exec: redis-server on 127.0.0.1 (a free port), redis-benchmark -n 20000 -q
# against it (bounded in count and time), then a SET/GET check and a clean SHUTDOWN.
set -u
kmm=$1
command -v redis-server >/dev/null && command -v redis-benchmark >/dev/null && command -v redis-cli >/dev/null ||
  { echo "SKIP: redis-server/redis-tools are missing (scripts/setup-debian.sh installs them)"; exit 77; }
dir=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])' 2>/dev/null || echo $((20000 + RANDOM % 20000)))
"$kmm" exec -- redis-server --bind 127.0.0.1 --port "$port" --save "" --appendonly no --dir "$dir" >"$dir/server.log" 2>&1 &
server=$!
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
redis-cli -p "$port" shutdown nosave >/dev/null 2>&1
wait "$server"
rc=$?
server=""
[ $rc -eq 0 ] || { echo "FAIL: redis-server exit $rc"; cat "$dir/server.log"; exit 1; }
echo "redis-server exited cleanly"
