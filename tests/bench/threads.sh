#!/usr/bin/env bash
# Benchmark (not a test): futex ping-pong between two threads on two vCPUs, native vs lwk-vmm
# in one run; prints time per round trip, the ratio and VM exits per wake-up.
# Usage: tests/bench/threads.sh [ROUNDS]   (needs 2 host cores)
# On the nested kvm_pvm development machine every wait/wake runs emulated ring-0 code and an IPI
# (~10-40 us there); absolute numbers say nothing about hardware KVM.
set -euo pipefail
rounds=${1:-2000}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
gcc -static -O2 -pthread -o "$out/pingpong" "$repo/tests/bench/pingpong.c"
native=$("$out/pingpong" "$rounds")
lwk=$("$repo/target/release/lwk-vmm" run --cpus 2 --stats-json "$out/pingpong.json" "$out/pingpong" "$rounds")
n=$(echo "$native" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
l=$(echo "$lwk" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
exits=$(sed -n 's/.*"vm_exits": *\([0-9]*\).*/\1/p' "$out/pingpong.json" | head -n1)
futex=$(sed -n 's/.*"futex": *\([0-9]*\).*/\1/p' "$out/pingpong.json" | head -n1)
awk -v n="$n" -v l="$l" -v e="$exits" -v f="$futex" -v r="$rounds" 'BEGIN {
    printf "futex ping-pong, %d round trips: native %.2f us, lwk-vmm %.2f us per round trip, ratio %.1fx\n", r, n, l, l / n
    printf "lwk-vmm: %d VM exits in the whole job for %d futex calls (%.3f exits per wake-up)\n", e, f, e / (2 * r) }'
