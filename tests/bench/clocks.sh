#!/usr/bin/env bash
# Benchmark (not a test): the cost of clock_gettime(CLOCK_MONOTONIC) through the vDSO and
# through the raw syscall, natively and under lwk-vmm in one run, with the ratios; then the
# drift of the guest's CLOCK_REALTIME against the host's over DRIFT_S seconds (a driver writes a
# line to the guest, which answers with its CLOCK_REALTIME; the host reads its clock before and
# after, so each offset is known to half a round trip).
# Usage: tests/bench/clocks.sh [ITERS] [REPS] [DRIFT_S]   (builds lwk-vmm --release first)
# Absolute syscall times on the nested kvm_pvm development machines say nothing about hardware
# KVM (every trap into the LWK is emulated there); the vDSO ratio to native is what carries over.
set -euo pipefail
iters=${1:-1000000}
reps=${2:-7}
drift_s=${3:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
lwk="$repo/target/release/lwk-vmm"
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for libc in glibc musl; do
    cc=gcc
    [ "$libc" = musl ] && cc=musl-gcc
    command -v "$cc" >/dev/null || continue
    "$cc" -static -O2 -Wall -Werror -o "$out/clocks-$libc" "$repo/tests/bench/clocks.c"
    "$out/clocks-$libc" cost "$iters" "$reps" >"$out/clocks-native-$libc.txt"
    "$lwk" run "$out/clocks-$libc" cost "$iters" "$reps" >"$out/clocks-lwk-$libc.txt"
    nv=$(cut -d' ' -f1 "$out/clocks-native-$libc.txt" | median)
    ns=$(cut -d' ' -f2 "$out/clocks-native-$libc.txt" | median)
    lv=$(cut -d' ' -f1 "$out/clocks-lwk-$libc.txt" | median)
    ls=$(cut -d' ' -f2 "$out/clocks-lwk-$libc.txt" | median)
    awk -v l="$libc" -v nv="$nv" -v ns="$ns" -v lv="$lv" -v ls="$ls" 'BEGIN {
        printf "%-5s native : vDSO %8.1f ns   syscall %10.1f ns\n", l, nv, ns
        printf "%-5s lwk-vmm: vDSO %8.1f ns   syscall %10.1f ns   vDSO lwk/native %.2f   lwk syscall/vDSO %.0f\n",
            l, lv, ls, lv / nv, ls / lv
    }'
done

python3 - "$lwk" "$out/clocks-glibc" "$drift_s" <<'PY'
import subprocess, sys, time
lwk, prog, secs = sys.argv[1], sys.argv[2], float(sys.argv[3])
p = subprocess.Popen([lwk, "run", prog, "drift"], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
def sample():
    best = None
    for _ in range(20):  # keep the reading with the shortest round trip
        t0 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        p.stdin.write("x\n"); p.stdin.flush()
        v, s = map(int, p.stdout.readline().split())
        t1 = time.clock_gettime_ns(time.CLOCK_REALTIME)
        if best is None or t1 - t0 < best[2]:
            best = (v - (t0 + t1) // 2, s - (t0 + t1) // 2, t1 - t0)
    return best
first = sample()
time.sleep(secs)
last = sample()
p.stdin.close(); p.wait()
us = lambda n: n / 1000
print(f"realtime offset guest-host at start: vDSO {us(first[0]):+.1f} us, syscall {us(first[1]):+.1f} us (+-{us(first[2]) / 2:.1f} us)")
print(f"realtime offset guest-host after {secs:.0f} s: vDSO {us(last[0]):+.1f} us, syscall {us(last[1]):+.1f} us (+-{us(last[2]) / 2:.1f} us)")
print(f"drift over {secs:.0f} s: {us(last[0] - first[0]):+.1f} us (goal: under 1000 us)")
PY
