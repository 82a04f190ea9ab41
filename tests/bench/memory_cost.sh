#!/usr/bin/env bash
# Measurement (not a test): ring-0 time of the LWK's memory paths per call (or per page fault),
# from the memory summary `lwk-vmm run -v` prints at exit. Each operation runs COUNT times and
# 0 times; the difference divided by the difference in calls (faults) is the cost of one. On
# the nested development KVM guest ring 0 is emulated (~1-2 us per instruction), so these
# figures are ~1000x what the same paths cost on hardware KVM: read them as instruction counts.
# Usage: tests/bench/memory_cost.sh [COUNT]   (default 100)
set -euo pipefail
count=${1:-100}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench/memory"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
lwk="$repo/target/release/lwk-vmm"
gcc -O2 -static -Wall -Werror -o "$out/mm_ops" "$repo/tests/bench/mm_ops.c"

# summary OP N [OPTIONS...] -> "calls call_us faults fault_us zero_requests"
summary() {
    local op=$1 n=$2
    shift 2
    "$lwk" run -v "$@" "$out/mm_ops" "$op" "$n" 2>&1 >/dev/null |
        sed -n 's/.*mm: \([0-9]*\) memory syscalls, \([0-9]*\) us in ring 0.*; \([0-9]*\) faults served (\([0-9]*\) us).*host zeroing: \([0-9]*\) requests.*/\1 \2 \3 \4 \5/p'
}
printf '%-10s %-14s %8s %14s %8s %14s %6s\n' op policy calls "us/call" faults "us/fault" zeroing
for spec in mmap4k mmap64m brk mprotect dontneed touch2m:--no-prefault touch4k:--no-prefault; do
    op=${spec%%:*}
    opt=
    [ "$spec" = "$op" ] || opt=${spec#*:}
    # shellcheck disable=SC2086
    read -r c0 t0 f0 ft0 z0 <<<"$(summary "$op" 0 $opt)"
    # shellcheck disable=SC2086
    read -r c1 t1 f1 ft1 z1 <<<"$(summary "$op" "$count" $opt)"
    awk -v op="$op" -v pol="${opt:-prefault}" -v c=$((c1 - c0)) -v t=$((t1 - t0)) -v f=$((f1 - f0)) \
        -v ft=$((ft1 - ft0)) -v z=$((z1 - z0)) 'BEGIN {
        printf "%-10s %-14s %8d %14s %8d %14s %6d\n", op, pol, c, (c > 0 ? sprintf("%.0f", t / c) : "-"),
            f, (f > 0 ? sprintf("%.0f", ft / f) : "-"), z }'
done
