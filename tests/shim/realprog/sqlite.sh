#!/usr/bin/env bash
# Under kmm exec: sqlite3 builds a table of 200,000 rows, indexes it, joins and aggregates;
# the result is checked against the same workload's known answer, and sqlite3's exit stats
# prove kmm was its allocator (lib.sh). Usage: sqlite.sh KMM_BINARY [hardened].
set -u
kmm=$1
. "$(dirname "$0")/lib.sh"
command -v sqlite3 >/dev/null || { echo "SKIP: sqlite3 is missing (scripts/setup-debian.sh installs it)"; exit 77; }
dir=$(mktemp -d)
trap 'rm -rf "$dir"' EXIT
kmm_stats_begin "$dir" "${2:-}"
cat >"$dir/w.sql" <<'SQL'
PRAGMA cache_size = -16000;
CREATE TABLE t(id INTEGER PRIMARY KEY, grp INTEGER, name TEXT, val REAL);
WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < 200000)
INSERT INTO t SELECT x, x % 97, printf('name-%d-%s', x, hex(randomblob(8))), x * 0.5 FROM c;
CREATE INDEX t_grp ON t(grp);
CREATE TABLE g AS SELECT grp, count(*) AS n, sum(val) AS s FROM t GROUP BY grp;
UPDATE t SET name = upper(name) WHERE id % 3 = 0;
DELETE FROM t WHERE id % 5 = 0;
VACUUM;
SELECT count(*), sum(id), (SELECT count(*) FROM g), (SELECT sum(n) FROM g),
       (SELECT count(*) FROM t WHERE name LIKE 'name-%'),
       (SELECT count(DISTINCT t.grp) FROM t JOIN g ON g.grp = t.grp WHERE g.n > 2000)
FROM t;
SQL
got=$("$kmm" exec -- sqlite3 "$dir/db" <"$dir/w.sql" 2>&1)
rc=$?
want="160000|16000000000|97|200000|160000|97"  # as glibc computes it
echo "sqlite3 result: $got"
[ $rc -eq 0 ] && [ "$got" = "$want" ] || { echo "FAIL: want $want"; exit 1; }
kmm_stats_check 1 16384 1  # its 16 MB page cache (cache_size) alone grows the heap past 16 MB (measured 32904 kB)
