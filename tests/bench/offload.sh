#!/usr/bin/env bash
# Benchmark (not a test): the offloaded round trip of a 4 KiB pread over the `exit` transport
# against the floor of that transport measured in the same run (an offloaded call the host
# answers from its fd table: fcntl(F_GETFD) on a closed fd), natively and under lwk-vmm.
# Prints medians per call and the ratio pread/floor under lwk-vmm (goal: <= 1.2).
# Usage: tests/bench/offload.sh [ITERS] [REPS]   (builds lwk-vmm --release first)
# Absolute times on the nested kvm_pvm development machines say nothing about hardware KVM
# (each trap into the LWK is emulated there); the ratio is what carries over.
set -euo pipefail
iters=${1:-2000}
reps=${2:-9}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
gcc -static -O2 -Wall -Werror -o "$out/offload_rtt" "$repo/tests/bench/offload_rtt.c"
lwk="$repo/target/release/lwk-vmm"

median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

"$out/offload_rtt" "$iters" "$reps" >"$out/rtt-native.txt"
"$lwk" run --stats-json "$out/rtt-stats.json" "$out/offload_rtt" "$iters" "$reps" >"$out/rtt-lwk.txt"
np=$(cut -d' ' -f1 "$out/rtt-native.txt" | median)
nf=$(cut -d' ' -f2 "$out/rtt-native.txt" | median)
lp=$(cut -d' ' -f1 "$out/rtt-lwk.txt" | median)
lf=$(cut -d' ' -f2 "$out/rtt-lwk.txt" | median)
exits=$(sed -n 's/.*"vm_exits": *\([0-9]*\).*/\1/p' "$out/rtt-stats.json" | head -n1)
awk -v np="$np" -v nf="$nf" -v lp="$lp" -v lf="$lf" -v e="$exits" -v n="$iters" -v r="$reps" 'BEGIN {
    printf "native : pread 4 KiB %9.2f us   fcntl(EBADF) %9.2f us\n", np / 1000, nf / 1000
    printf "lwk-vmm: pread 4 KiB %9.2f us   floor        %9.2f us   ratio pread/floor %.3f   (vm_exits %s, %d x %d calls each)\n",
        lp / 1000, lf / 1000, lp / lf, e, r, n
}'
