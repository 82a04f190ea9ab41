#!/usr/bin/env bash
# Benchmark (not a test): start-to-exit time of a static hello, natively and under lwk-vmm, in
# the same run, alternating, N runs each; prints medians, the ratio and the VM-exit count.
# Usage: tests/bench/startup.sh [N]   (builds lwk-vmm --release and the test programs first)
# Absolute times depend on the machine: on the nested kvm_pvm development machines guest ring 0
# is emulated, so they say nothing about hardware KVM. Compare ratios and counts.
set -euo pipefail
n=${1:-20}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
sh "$repo/tests/programs/build.sh" "$out/programs" >/dev/null
lwk="$repo/target/release/lwk-vmm"

now_us() { local t=${EPOCHREALTIME/./}; echo "${t}"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for libc in glibc musl; do
    prog="$out/programs/hello-$libc"
    : >"$out/native.txt"
    : >"$out/lwk.txt"
    for _ in $(seq "$n"); do
        t0=$(now_us); "$prog" >/dev/null; t1=$(now_us)
        echo $((t1 - t0)) >>"$out/native.txt"
        t0=$(now_us); "$lwk" run --stats-json "$out/stats.json" "$prog" >/dev/null; t1=$(now_us)
        echo $((t1 - t0)) >>"$out/lwk.txt"
    done
    nat=$(median <"$out/native.txt")
    vm=$(median <"$out/lwk.txt")
    exits=$(sed -n 's/.*"vm_exits": *\([0-9]*\).*/\1/p' "$out/stats.json" | head -n1)
    entry=$(sed -n 's/.*"syscall_entry": *"\([a-z]*\)".*/\1/p' "$out/stats.json")
    backing=$(sed -n 's/.*"memory_backing": *"\([^"]*\)".*/\1/p' "$out/stats.json")
    awk -v l="$libc" -v a="$nat" -v b="$vm" -v e="$exits" -v s="$entry" -v m="$backing" -v n="$n" 'BEGIN {
        printf "hello-%-5s  native median %7.2f ms   lwk-vmm median %7.2f ms   ratio %6.1fx   vm_exits %s   syscall entry %s   memory %s   (%d runs)\n",
            l, a / 1000, b / 1000, b / a, e, s, m, n }'
done
