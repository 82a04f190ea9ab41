#!/usr/bin/env bash
# Benchmark (not a test): FWQ operating-system noise, natively and under lwk-vmm, on the same
# host core in one run (native pinned with taskset, the vCPU with --cpu-list). Prints for each
# the noise fraction sum(x - min) / sum(x), the max quantum over the min, and the ratio
# lwk-vmm / native of the noise fraction (goal: <= 1.0).
# Usage: tests/bench/fwq.sh [SAMPLES] [WORK] [CORE] [REPS]   (builds lwk-vmm --release first)
# Caveat: the development machines are nested, shared and noisy; the LWK cannot remove noise
# the host itself adds, so compare the two lines of one run, never numbers across runs.
set -euo pipefail
samples=${1:-200000}
work=${2:-20000}
core=${3:-1}
reps=${4:-3}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
gcc -static -O2 -Wall -Werror -o "$out/fwq" "$repo/tests/bench/fwq.c"
lwk="$repo/target/release/lwk-vmm"
median() { sort -g | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

: >"$out/fwq-native.txt"
: >"$out/fwq-lwk.txt"
for _ in $(seq "$reps"); do  # interleaved, so both see the same host weather
    taskset -c "$core" "$out/fwq" "$samples" "$work" >>"$out/fwq-native.txt"
    "$lwk" run --cpu-list "$core" --stats-json "$out/fwq-stats.json" "$out/fwq" "$samples" "$work" >>"$out/fwq-lwk.txt"
done
field() { awk -v f="$1" '{for (i = 1; i < NF; i++) if ($i == f) print $(i + 1)}' "$2"; }
nn=$(field noise "$out/fwq-native.txt" | median)
ln=$(field noise "$out/fwq-lwk.txt" | median)
nmin=$(field min "$out/fwq-native.txt" | median)
nmax=$(field max "$out/fwq-native.txt" | median)
lmin=$(field min "$out/fwq-lwk.txt" | median)
lmax=$(field max "$out/fwq-lwk.txt" | median)
irq=$(sed -n 's/.*"guest_timer_interrupts": *\([0-9]*\).*/\1/p' "$out/fwq-stats.json" | head -n1)
awk -v nn="$nn" -v ln="$ln" -v nmin="$nmin" -v nmax="$nmax" -v lmin="$lmin" -v lmax="$lmax" \
    -v s="$samples" -v w="$work" -v c="$core" -v r="$reps" -v irq="${irq:-n/a}" 'BEGIN {
    printf "FWQ %d samples x %d iterations, core %d, median of %d runs each\n", s, w, c, r
    printf "native : noise %.6f   min %d ticks   max %d ticks (%.1fx min)\n", nn, nmin, nmax, nmax / nmin
    printf "lwk-vmm: noise %.6f   min %d ticks   max %d ticks (%.1fx min)   guest timer interrupts (last run) %s\n", ln, lmin, lmax, lmax / lmin, irq
    printf "noise ratio lwk-vmm/native %.3f (goal <= 1.0)\n", ln / nn
}'
