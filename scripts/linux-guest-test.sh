#!/usr/bin/env bash
# The protector in a real kernel (issue 17): builds kmm_protect.ko and the test modules
# against Debian's stock kernel headers, packs them with busybox into an initramfs, boots
# Debian's kernel under qemu (TCG, -smp 2, slub_debug=FZPU) and runs linux/tests/guest-init.sh
# in the guest.
#   linux-guest-test.sh test   every check (make test-linux); PASS/FAIL summary, exit 1 on failure
#   linux-guest-test.sh demo   the paper's table from the real kernel, stock and protected
#   linux-guest-test.sh bench  ns per kmalloc+kfree pair with and without the protector, in a
#                              guest booted without slub_debug (the numbers in docs/LINUX.md)
#   linux-guest-test.sh rescue the transfer racing the collector alone (part of test)
#   linux-guest-test.sh safety records, identities and disarmed kprobes alone (part of test)
# Environment: KMMT_CYCLES (stress insmod/rmmod cycles, default 200), KMMT_STRESS_S (the
# stress stops there once 50 cycles are done, default 80), KMMT_TIMEOUT (s, 360),
# KMMT_ACCEL (qemu -accel, default tcg: KVM was seen to hang at boot on this kind of machine),
# KMMT_CPU (qemu -cpu, default max; with kvm use host).
# Installs what it needs (scripts/setup-linux.sh guest). qemu runs under nice.
set -euo pipefail

what="${1:-test}"
case "$what" in test|demo|bench|rescue|safety) ;; *) echo "usage: $0 [test|demo|bench|rescue|safety]" >&2; exit 2 ;; esac
root="$(cd "$(dirname "$0")/.." && pwd)"
bash "$root/scripts/setup-linux.sh" guest

# The kernel to boot: the newest installed image whose headers are installed too.
kver=""
for img in $(ls /boot/vmlinuz-* 2>/dev/null | sort -V -r); do
  v="${img#/boot/vmlinuz-}"
  if [ -e "/lib/modules/$v/build/Makefile" ]; then kver="$v"; break; fi
done
if [ -z "$kver" ]; then
  echo "linux-guest-test: no /boot/vmlinuz-* with matching headers in /lib/modules/*/build" >&2
  exit 1
fi
kernel="/boot/vmlinuz-$kver"
[ -r "$kernel" ] || { echo "linux-guest-test: cannot read $kernel" >&2; exit 1; }

out="$root/build/linux"
KVER="$kver" bash "$root/scripts/linux-build.sh" "$out" >/dev/null

guest="$root/build/linux-guest"
rm -rf "$guest/root"
mkdir -p "$guest/root/bin" "$guest/root/modules"
cp /bin/busybox "$guest/root/bin/busybox"
cp "$out/kmm_protect.ko" "$out"/tests/*.ko "$guest/root/modules/"
cp "$root/linux/tests/guest-init.sh" "$guest/root/init"
chmod +x "$guest/root/init"
(cd "$guest/root" && find . | cpio -o -H newc --quiet | gzip -1) > "$guest/initrd.gz"

log="$guest/$what.log"
cycles="${KMMT_CYCLES:-200}"
slub_debug="slub_debug=FZPU"
[ "$what" = bench ] && slub_debug=""
append="console=ttyS0 quiet panic=-1 oops=panic $slub_debug kmmt=$what kmmt_cycles=$cycles kmmt_stress_s=${KMMT_STRESS_S:-80}"
start=$(date +%s)
rc=0
timeout "${KMMT_TIMEOUT:-360}" nice -n 10 qemu-system-x86_64 -accel "${KMMT_ACCEL:-tcg}" -cpu "${KMMT_CPU:-max}" \
  -smp 2 -m 512 -nographic -no-reboot -kernel "$kernel" -initrd "$guest/initrd.gz" \
  -append "$append" </dev/null >"$log" 2>&1 || rc=$?
secs=$(( $(date +%s) - start ))
tr -d '\r' <"$log" >"$log.txt"

if [ "$what" = demo ]; then
  awk -v kver="$kver" '
    /^KMMT ROW / { v[$3, $4, "free"] = $5; v[$3, $4, "slab"] = $6; if (!seen[$4]++) steps[n++] = $4 }
    /^KMMT LOG GCONLINUX/ || /GCONLINUX activated/ { sub(/^.*kmm_protect: /, ""); if (!g++) gc = $0 }
    END {
      if (n == 0) { print "linux demo: the guest printed no readings"; exit 1 }
      printf "kmm_protect.ko on Debian 12'"'"'s kernel %s (qemu, 2 CPUs, 512 MB, slub_debug=FZPU)\n", kver
      print "One boot: the protected run first, then the stock run (kmm_protect loaded with mode=off).\n"
      print "Module m_test kmallocs 4096 x kmalloc(4096) at insmod and never kfrees at rmmod; gc_delay=5s."
      print "(slub_debug pads every 4 KiB object, so insmod takes more than 16 MB.)\n"
      printf "%-22s | %-30s | %-30s\n", "", "stock kernel (mode=off)", "protected (mode=reclaim)"
      printf "%-22s | %10s %8s %10s | %10s %8s %10s\n", "/proc/meminfo after", "MemFree", "Slab", "vs before", "MemFree", "Slab", "vs before"
      line = ""; for (i = 0; i < 22; i++) line = line "-"
      print line "-+-" substr(line line, 1, 30) "-+-" substr(line line, 1, 30)
      for (i = 0; i < n; i++) {
        s = steps[i]
        printf "%-22s | %10d %8d %+10d | %10d %8d %+10d\n", s, v["off", s, "free"], v["off", s, "slab"],
          v["off", s, "free"] - v["off", steps[0], "free"], v["reclaim", s, "free"], v["reclaim", s, "slab"],
          v["reclaim", s, "free"] - v["reclaim", steps[0], "free"]
      }
      print "(kB; \"vs before\" is MemFree minus MemFree before insmod)\n"
      print "Kernel log of the protected machine: " gc
      printf "Stock kernel: %d kB stay lost after rmmod, until reboot (a \"memory lock\").\n",
        v["off", steps[0], "free"] - v["off", steps[n - 1], "free"]
      printf "Protected kernel: insmod took %d kB; after rmmod and the delay MemFree is %d kB, %+d kB from before insmod.\n",
        v["reclaim", steps[0], "free"] - v["reclaim", steps[1], "free"], v["reclaim", steps[n - 1], "free"],
        v["reclaim", steps[n - 1], "free"] - v["reclaim", steps[0], "free"]
    }' "$log.txt"
fi

if [ "$what" = bench ]; then
  awk '/^KMMT BENCH / {
      m = $6; k = $10
      if (!($3 in bm) || m < bm[$3]) bm[$3] = m
      if (!($3 in bk) || k < bk[$3]) bk[$3] = k
    }
    END {
      if (!("stock" in bm) || !("protected" in bm)) { print "linux bench: no readings"; exit 1 }
      print "ns per pair, best of the rounds (qemu TCG, 2 CPUs, no slub_debug):"
      printf "  %-36s %8s %12s %10s %8s\n", "", "stock", "empty probes", "protected", "ratio"
      printf "  %-36s %8d %12d %10d %8.2f\n", "kmalloc(64)+kfree from a module", bm["stock"], bm["tracepoints"], bm["protected"], bm["protected"] / bm["stock"]
      printf "  %-36s %8d %12d %10d %8.2f\n", "kasprintf+kfree (kernel call site)", bk["stock"], bk["tracepoints"], bk["protected"], bk["protected"] / bk["stock"]
      print "  (empty probes: m_tpnull, the same four tracepoints with probes that do nothing)"
    }' "$log.txt"
fi

failed=0
grep '^KMMT \(PASS\|FAIL\|LOG\|BENCH\)' "$log.txt" | { { [ "$what" = test ] || [ "$what" = rescue ] || [ "$what" = safety ]; } && cat || grep -v '^KMMT PASS' || true; } || true
grep -q '^KMMT FAIL' "$log.txt" && failed=1
if ! grep -q '^KMMT END failures=0' "$log.txt"; then
  echo "linux-guest-test: the guest did not finish its checks (qemu rc=$rc)"
  failed=1
fi
if ! grep -q 'reboot: Power down' "$log.txt"; then
  echo "linux-guest-test: the guest did not power off cleanly (qemu rc=$rc)"
  failed=1
fi
npass=$(grep -c '^KMMT PASS' "$log.txt" || true)
nfail=$(grep -c '^KMMT FAIL' "$log.txt" || true)
if [ $failed -ne 0 ]; then
  echo "---- last 60 lines of the guest console ($log.txt) ----"
  tail -60 "$log.txt"
  echo "linux-guest-test $what: FAIL ($npass passed, $nfail failed, kernel $kver, ${secs} s)"
  exit 1
fi
echo "linux-guest-test $what: PASS ($npass checks, kernel $kver, ${secs} s)"
