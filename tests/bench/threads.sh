#!/usr/bin/env bash
# Benchmark (not a test), native vs lwk-vmm in one run:
#  1. futex ping-pong between two threads on two vCPUs: time per round trip, ratio, VM exits per
#     wake-up;
#  2. the same two threads sharing ONE vCPU (oversubscribe = "timeslice"; natively pinned to one
#     core with taskset): every wake-up is a context switch (with its FPU switch exit);
#  3. an OpenMP reduction at 1..N threads on N vCPUs (N = host cores, at most 4), and with twice
#     as many threads as vCPUs (timeslice; natively the same threads on the same cores).
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
gcc -static -O2 -fopenmp -o "$out/omp_reduce" "$repo/tests/bench/omp_reduce.c"
native=$("$out/pingpong" "$rounds")
lwk=$("$repo/target/release/lwk-vmm" run --cpus 2 --stats-json "$out/pingpong.json" "$out/pingpong" "$rounds")
n=$(echo "$native" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
l=$(echo "$lwk" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
exits=$(sed -n 's/.*"vm_exits": *\([0-9]*\).*/\1/p' "$out/pingpong.json" | head -n1)
futex=$(sed -n 's/.*"futex": *\([0-9]*\).*/\1/p' "$out/pingpong.json" | head -n1)
awk -v n="$n" -v l="$l" -v e="$exits" -v f="$futex" -v r="$rounds" 'BEGIN {
    printf "futex ping-pong, %d round trips: native %.2f us, lwk-vmm %.2f us per round trip, ratio %.1fx\n", r, n, l, l / n
    printf "lwk-vmm: %d VM exits in the whole job for %d futex calls (%.3f exits per wake-up)\n", e, f, e / (2 * r) }'

# 2. Two threads on one vCPU.
native=$(taskset -c 0 "$out/pingpong" "$rounds")
lwk=$("$repo/target/release/lwk-vmm" run --cpus 1 --oversubscribe timeslice --stats-json "$out/pingpong1.json" "$out/pingpong" "$rounds")
n=$(echo "$native" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
l=$(echo "$lwk" | sed -n 's/.*, \([0-9.]*\) us per.*/\1/p')
exits=$(sed -n 's/.*"vm_exits": *\([0-9]*\).*/\1/p' "$out/pingpong1.json" | head -n1)
switches=$(sed -n 's/.*"context_switches": *\([0-9]*\).*/\1/p' "$out/pingpong1.json" | head -n1)
awk -v n="$n" -v l="$l" -v e="$exits" -v s="$switches" -v r="$rounds" 'BEGIN {
    printf "futex ping-pong on ONE core/vCPU, %d round trips: native %.2f us, lwk-vmm %.2f us per round trip, ratio %.1fx\n", r, n, l, l / n
    printf "lwk-vmm: %d context switches, %d VM exits (%.2f exits per switch)\n", s, e, e / (s > 0 ? s : 1) }'

# 3. OpenMP reduction.
cores=$(nproc)
max=$((cores < 4 ? cores : 4))
omp_us() { sed -n 's/.*, \([0-9.]*\) us per reduction.*/\1/p'; }
for t in $(seq 1 "$max"); do
    n=$(OMP_NUM_THREADS=$t taskset -c "0-$((t - 1))" "$out/omp_reduce" | omp_us)
    l=$("$repo/target/release/lwk-vmm" run --cpus "$t" --env OMP_NUM_THREADS=$t "$out/omp_reduce" | omp_us)
    awk -v t="$t" -v n="$n" -v l="$l" 'BEGIN {
        printf "OpenMP reduction, %d threads on %d vCPUs/cores: native %.1f us, lwk-vmm %.1f us, ratio %.2f\n", t, t, n, l, l / n }'
done
t=$((2 * max))
n=$(OMP_NUM_THREADS=$t taskset -c "0-$((max - 1))" "$out/omp_reduce" | omp_us)
l=$("$repo/target/release/lwk-vmm" run --cpus "$max" --oversubscribe timeslice --env OMP_NUM_THREADS=$t --stats-json "$out/omp.json" "$out/omp_reduce" | omp_us)
switches=$(sed -n 's/.*"context_switches": *\([0-9]*\).*/\1/p' "$out/omp.json" | head -n1)
awk -v t="$t" -v c="$max" -v n="$n" -v l="$l" -v s="$switches" 'BEGIN {
    printf "OpenMP reduction, %d threads on %d vCPUs/cores (timeslice): native %.1f us, lwk-vmm %.1f us, ratio %.2f, %d context switches\n", t, c, n, l, l / n, s }'
