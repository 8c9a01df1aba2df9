#!/usr/bin/env bash
# bench/run_workloads.sh — the workload suite (bench/workloads) under glibc, mimalloc,
# jemalloc, tcmalloc and kmm, side by side: wall time, CPU time (user+system) and minor page
# faults (getrusage), peak RSS (the process's VmHWM: workloads.cpp, peak_rss_kb), each as a
# ratio to glibc, with the geometric mean per allocator, at each thread count. Best (lowest
# wall time) of REPS runs; the rest from it. To judge one change, bench/pair_workloads.py.
#
#   bench/run_workloads.sh [BUILD_DIR] [THREADS...]     (defaults: build, 1 2)
#   env: REPS=3 SCALE=1 WORKLOADS="larson xmalloc small realloc fragment tight bigchurn pool threads"
#        ALLOCS="glibc kmm" (a subset of glibc mimalloc jemalloc tcmalloc kmm)
#        HARDENING=1: kmm again under each hardening option (src/slab/hardening.h) and all
#        of them at once, as columns kmm+freelist_hardened ... kmm+all (issue 10's costs)
#        BASE=mimalloc: the ratios are to that allocator instead of glibc (issue 16's targets)
#        EXTRA="kmm-before=/path/libkmm-preload.so ...": more columns, each a library to preload
#        (an older build of kmm, say: before/after in one run)
#
# Needs build/bin/kmm-workloads and build/lib/libkmm-preload.so (cmake --build BUILD_DIR
# --target kmm-workloads kmm-preload) and the Debian packages libmimalloc2.0, libjemalloc2,
# libtcmalloc-minimal4 (scripts/setup-debian.sh); a missing allocator is left out.
set -euo pipefail
build=${1:-build}
shift || true
threads=("$@")
[ ${#threads[@]} -eq 0 ] && threads=(1 2)
reps=${REPS:-3}
scale=${SCALE:-1}
workloads=(${WORKLOADS:-larson xmalloc small realloc fragment tight bigchurn pool threads})
bin=$build/bin/kmm-workloads
[ -x "$bin" ] || { echo "missing $bin (cmake --build $build --target kmm-workloads)"; exit 2; }
libdir=/usr/lib/$(gcc -print-multiarch 2>/dev/null || echo x86_64-linux-gnu)
declare -A lib=(
  [glibc]=""
  [mimalloc]=$libdir/libmimalloc.so.2
  [jemalloc]=$libdir/libjemalloc.so.2
  [tcmalloc]=$libdir/libtcmalloc_minimal.so.4
  [kmm]=$(cd "$build/lib" && pwd)/libkmm-preload.so
)
order=(${ALLOCS:-glibc mimalloc jemalloc tcmalloc kmm})
avail=()
for a in "${order[@]}"; do
  if [ -z "${lib[$a]}" ] || [ -r "${lib[$a]}" ]; then avail+=("$a"); else echo "note: $a not found (${lib[$a]}), left out" >&2; fi
done
declare -A kmm_opts=()
if [ "${HARDENING:-0}" = 1 ]; then
  for o in freelist_hardened=on redzone=on poison=on quarantine=1M guard_pages=on \
           all:freelist_hardened=on:redzone=on:poison=on:quarantine=1M:guard_pages=on; do
    name=kmm+${o%%[=:]*}
    lib[$name]=${lib[kmm]}
    kmm_opts[$name]=${o#all:}
    avail+=("$name")
  done
fi

for e in ${EXTRA:-}; do
  name=${e%%=*} path=${e#*=}
  if [ -r "$path" ]; then lib[$name]=$path; avail+=("$name"); else echo "note: $name not found ($path), left out" >&2; fi
done

results=$(mktemp)
trap 'rm -f "$results"' EXIT
for t in "${threads[@]}"; do
  for w in "${workloads[@]}"; do
    for a in "${avail[@]}"; do
      best=""
      for _ in $(seq 1 "$reps"); do
        line=$(env ${lib[$a]:+LD_PRELOAD=${lib[$a]}} ${kmm_opts[$a]:+KMM_OPTIONS=${kmm_opts[$a]}} "$bin" "$w" "$t" "$scale")
        secs=$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$line")
        if [ -z "$best" ] || awk -v a="$secs" -v b="$(sed -E 's/.*seconds=([0-9.]+).*/\1/' <<<"$best")" 'BEGIN{exit !(a<b)}'; then best=$line; fi
      done
      echo "$a $best" >>"$results"
    done
  done
done

# Table: per thread count, per workload, each allocator's time/RSS/faults and ratios to BASE.
awk -v allocs="${avail[*]}" -v base="${BASE:-glibc}" '
  { a=$1; for (i=2;i<=NF;i++) { split($i,kv,"="); f[kv[1]]=kv[2] }
    key=f["threads"] SUBSEP f["workload"] SUBSEP a
    T[key]=f["seconds"]; C[key]=f["cpu"]; R[key]=f["maxrss_kb"]; F[key]=f["minflt"]
    if (!(f["threads"] in seen_t)) { seen_t[f["threads"]]=1; tl[++nt]=f["threads"] }
    if (!(f["workload"] in seen_w)) { seen_w[f["workload"]]=1; wl[++nw]=f["workload"] } }
  END {
    na=split(allocs, al, " ")
    for (ti=1; ti<=nt; ti++) {
      t=tl[ti]
      printf "\n### %d thread%s\n\n", t, (t==1?"":"s")
      printf "| workload |"; for (j=1;j<=na;j++) printf " %s wall s (x) | cpu s (x) | RSS MB (x) | faults (x) |", al[j]; printf "\n"
      printf "|---|"; for (j=1;j<=na;j++) printf "---|---|---|---|"; printf "\n"
      for (j=1;j<=na;j++) { lt[j]=0; lc[j]=0; lr[j]=0; lf[j]=0 }
      for (wi=1; wi<=nw; wi++) {
        w=wl[wi]; g=t SUBSEP w SUBSEP base
        printf "| %s |", w
        for (j=1;j<=na;j++) {
          k=t SUBSEP w SUBSEP al[j]
          rt=T[k]/T[g]; rc=C[k]/C[g]; rr=R[k]/R[g]; rf=F[k]/F[g]
          lt[j]+=log(rt); lc[j]+=log(rc); lr[j]+=log(rr); lf[j]+=log(rf)
          printf " %.3f (%.2f) | %.3f (%.2f) | %.1f (%.2f) | %d (%.2f) |", T[k], rt, C[k], rc, R[k]/1024, rr, F[k], rf
        }
        printf "\n"
      }
      printf "| **geomean vs %s** |", base
      for (j=1;j<=na;j++) printf " **%.2f** | **%.2f** | **%.2f** | **%.2f** |", exp(lt[j]/nw), exp(lc[j]/nw), exp(lr[j]/nw), exp(lf[j]/nw)
      printf "\n"
    }
  }' "$results"
