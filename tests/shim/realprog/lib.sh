# tests/shim/realprog/lib.sh — sourced by the real-program tests: proof that kmm was the
# program's allocator and, for the hardened runs, that the hardening options took effect.
# A test that only checks the program's answers would pass on glibc if the preload were
# ignored (issue 22), so each test ends with kmm_stats_check.
#
#   kmm_stats_begin DIR [hardened]   every process run under `kmm exec` from now on appends
#                                    its exit stats (src/shim/stats.cpp) to DIR/kmm-stats;
#                                    `hardened` also switches on every hardening option
#   kmm_stats_check MIN_PROCS MIN_HEAP_KB MIN_OBJECTS
#                                    fails (returns 1, saying why) unless the file holds at
#                                    least MIN_PROCS stats blocks (one per process that ran
#                                    on kmm and exited), one block's heap grew to MIN_HEAP_KB
#                                    (MemTotal: the frames kmm brought online, which never go
#                                    offline, so the process's peak; a process that allocates
#                                    next to nothing stays at the boot's 4232 kB), one block's
#                                    host held MIN_OBJECTS objects at exit, and, hardened,
#                                    every block's hardening line (read from the heap's
#                                    layers, not from KMM_OPTIONS) names all five options
#                                    and some block's quarantine holds objects
#
# Depends on: bash, awk. Invariant: KMM_OPTIONS from the caller is kept (kmm exec appends it
# after its own flags, so it wins); stats= and the hardening keys are added after it.

KMM_HARDENED_OPTIONS="freelist_hardened=on:redzone=on:poison=on:quarantine=1M:guard_pages=on"

kmm_stats_begin() {
  kmm_stats_file="$1/kmm-stats"
  kmm_stats_hardened=0
  : >"$kmm_stats_file"
  local add="stats=$kmm_stats_file"
  if [ "${2:-}" = hardened ]; then
    kmm_stats_hardened=1
    add="$KMM_HARDENED_OPTIONS:$add"
  fi
  export KMM_OPTIONS="${KMM_OPTIONS:+$KMM_OPTIONS:}$add"
}

kmm_stats_check() {
  local min_procs=$1 min_heap_kb=$2 min_objects=$3
  # One line per stats block: pid, host objects at exit, MemTotal (kB), hardening words.
  local summary
  summary=$(awk '
    function flush() { if (pid != "") printf "%s %d %d %s\n", pid, host, total, (hard == "" ? "-" : hard) }
    /^=== kmm stats: pid / { flush(); pid = $5; host = 0; total = 0; hard = ""; sec = ""; next }
    /^--- hardening: / { hard = $0; sub(/^--- hardening: /, "", hard); gsub(/ /, ",", hard); next }
    /^--- / { sec = $2; next }
    sec == "modules" && $1 == "kernel" && $2 == "host" { host = $3 }
    sec == "/proc/meminfo" && $1 == "MemTotal:" { total = $2 }
    END { flush() }' "$kmm_stats_file")
  local blocks max_host max_heap
  blocks=$(printf '%s\n' "$summary" | grep -c . || true)
  max_host=$(printf '%s\n' "$summary" | awk '$2 > m { m = $2 } END { print m + 0 }')
  max_heap=$(printf '%s\n' "$summary" | awk '$3 > m { m = $3 } END { print m + 0 }')
  echo "kmm stats: $blocks process(es) under kmm (want >= $min_procs); largest heap: $max_heap kB" \
    "(want >= $min_heap_kb); most objects a host held at exit: $max_host (want >= $min_objects)"
  if [ "$blocks" -eq 0 ]; then
    echo "FAIL: no kmm stats in $kmm_stats_file: kmm was not the allocator (preload ignored?)"
    return 1
  fi
  if [ "$blocks" -lt "$min_procs" ]; then
    echo "FAIL: only $blocks process(es) ran on kmm"
    return 1
  fi
  if [ "$max_heap" -lt "$min_heap_kb" ] || [ "$max_host" -lt "$min_objects" ]; then
    echo "FAIL: kmm's heap stayed too small: the program's memory did not come from kmm"
    return 1
  fi
  if [ "$kmm_stats_hardened" = 1 ]; then
    local want bad
    for want in freelist_hardened=on redzone=on poison=on guard_pages=on quarantine=1048576; do
      bad=$(printf '%s\n' "$summary" | awk -v w="$want" '{ n = split($4, a, ","); ok = 0; for (i = 1; i <= n; i++) if (a[i] == w) ok = 1; if (!ok) print $1 }' | head -3)
      if [ -n "$bad" ]; then
        echo "FAIL: hardening option $want not in effect in process(es) $(echo $bad)"
        return 1
      fi
    done
    local quarantined
    quarantined=$(printf '%s\n' "$summary" | awk '{ n = split($4, a, ","); for (i = 1; i < n; i++) if (a[i] == "quarantined" && a[i + 1] + 0 > m) m = a[i + 1] + 0 } END { print m + 0 }')
    echo "kmm stats: hardening on in every process; most objects in a quarantine at exit: $quarantined"
    if [ "$quarantined" -eq 0 ]; then
      echo "FAIL: no process's quarantine held an object: frees did not go through the hardened heap"
      return 1
    fi
  fi
  return 0
}
