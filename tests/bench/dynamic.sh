#!/usr/bin/env bash
# Benchmark (not a test): start-to-exit time of dynamically linked programs (the host's /bin/ls
# on a small directory, and /usr/bin/python3 -c pass), natively and under lwk-vmm, in the same
# run, alternating, N runs each; prints medians, the ratio, VM exits and the syscall split.
# Usage: tests/bench/dynamic.sh [N]   (builds lwk-vmm --release first)
# Absolute times on the nested kvm_pvm development machines say nothing about hardware KVM:
# every LWK syscall trap there costs ~100-200 us of emulated ring 0. Compare ratios and counts.
set -euo pipefail
n=${1:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
lwk="$repo/target/release/lwk-vmm"

now_us() { local t=${EPOCHREALTIME/./}; echo "${t}"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$out/stats.json" | head -n1; }

bench() {
    local name=$1
    shift
    : >"$out/native.txt"
    : >"$out/lwk.txt"
    for _ in $(seq "$n"); do
        t0=$(now_us); "$@" >/dev/null; t1=$(now_us)
        echo $((t1 - t0)) >>"$out/native.txt"
        t0=$(now_us); "$lwk" run --stats-json "$out/stats.json" "$@" >/dev/null; t1=$(now_us)
        echo $((t1 - t0)) >>"$out/lwk.txt"
    done
    local nat vm
    nat=$(median <"$out/native.txt")
    vm=$(median <"$out/lwk.txt")
    awk -v l="$name" -v a="$nat" -v b="$vm" -v e="$(field vm_exits)" -v lo="$(field local)" \
        -v of="$(field offloaded)" -v un="$(field unsupported)" -v n="$n" 'BEGIN {
        printf "%-10s native %8.2f ms   lwk-vmm %8.2f ms   ratio %6.1fx   vm_exits %s   syscalls local %s / offloaded %s / unsupported %s   (%d runs)\n",
            l, a / 1000, b / 1000, b / a, e, lo, of, un, n }'
}

cd "$repo/docs"
bench "ls" /bin/ls
if [ -x /usr/bin/python3 ]; then bench "python3" /usr/bin/python3 -c pass; fi
