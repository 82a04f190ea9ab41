#!/usr/bin/env bash
# Benchmark (not a test): random access (gups.c, GUPS / test-tlb style) and bandwidth (stream.c,
# STREAM-style triad), natively with 4 KiB pages and with THP, and under lwk-vmm with every
# host backing of guest RAM this machine can give (4K, THP, hugetlb 2M, hugetlb 1G). Hugepages
# are reserved for the run and the previous counts are put back when the script ends (also on
# failure or Ctrl-C). Runs alternate between configurations; medians and ratios are printed.
#
# Usage: tests/bench/memory.sh [RUNS]       (default 5; root for the hugetlb backings)
# Environment: GUPS_MIB (table, default 1024), GUPS_M (million updates per repeat, default 32),
#   STREAM_MIB (each of the three arrays, default 256), LWK_MEMORY (guest RAM, default 2G),
#   BENCH_CPU (the host CPU every run is pinned to, default the last one: lwk-vmm pins its
#   vCPU to the first CPU it may use, so native and LWK runs share the same core).
#
# Program compute runs in ring 3 at native speed on every KVM, so these ratios mean the same on
# the nested development KVM as on hardware: what differs is the address translation (guest
# page size x host backing page size).
set -euo pipefail
runs=${1:-5}
gups_mib=${GUPS_MIB:-1024}
gups_m=${GUPS_M:-32}
stream_mib=${STREAM_MIB:-256}
memory=${LWK_MEMORY:-2G}
cpu=${BENCH_CPU:-$(($(nproc) - 1))}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench/memory"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
lwk="$repo/target/release/lwk-vmm"
for b in gups stream; do
    gcc -O3 -static -Wall -Werror -o "$out/$b" "$repo/tests/bench/$b.c"
done

# --- hugepages: reserve, and restore whatever was there before ----------------------------------
nr2=/proc/sys/vm/nr_hugepages
nr1=/sys/kernel/mm/hugepages/hugepages-1048576kB/nr_hugepages
prev2=$(cat "$nr2" 2>/dev/null || echo)
prev1=$(cat "$nr1" 2>/dev/null || echo)
restore() {
    [ -z "$prev2" ] || echo "$prev2" >"$nr2" 2>/dev/null || echo "memory.sh: could not restore $nr2 to $prev2" >&2
    [ -z "$prev1" ] || echo "$prev1" >"$nr1" 2>/dev/null || echo "memory.sh: could not restore $nr1 to $prev1" >&2
}
trap restore EXIT
trap 'exit 130' INT TERM
mem_mib=$(( $(echo "$memory" | sed 's/[Gg]$/*1024/; s/[Mm]$//') ))
configs=(native-4k native-thp lwk-4K lwk-thp)
# 1 GiB pages first: allocating them can dissolve free 2 MiB pages.
if [ $((mem_mib % 1024)) -eq 0 ] && [ -n "$prev1" ] && echo $((prev1 + mem_mib / 1024)) >"$nr1" 2>/dev/null &&
    [ "$(cat /sys/kernel/mm/hugepages/hugepages-1048576kB/free_hugepages)" -ge $((mem_mib / 1024)) ]; then
    configs+=(lwk-1G)
else
    echo "memory.sh: no 1 GiB hugepages: skipping lwk-1G"
fi
if [ -n "$prev2" ] && echo $((prev2 + mem_mib / 2 + 8)) >"$nr2" 2>/dev/null &&
    [ "$(cat /sys/kernel/mm/hugepages/hugepages-2048kB/free_hugepages)" -ge $((mem_mib / 2)) ]; then
    configs+=(lwk-2M)
else
    echo "memory.sh: no 2 MiB hugepages (not root?): skipping lwk-2M"
fi

# run CONFIG BENCH ARGS... -> prints the benchmark's figure
run() {
    local config=$1 bench=$2
    shift 2
    local cmd
    case $config in
        native-4k) cmd=("$out/$bench" 4k "$@") ;;
        native-thp) cmd=("$out/$bench" thp "$@") ;;
        lwk-*) cmd=("$lwk" run --memory "$memory" --hugepages "${config#lwk-}"
            --stats-json "$out/$config-$bench.json" "$out/$bench" thp "$@") ;;
    esac
    case $config in lwk-4K) cmd[5]=off ;; lwk-thp) cmd[5]=thp ;; esac
    taskset -c "$cpu" "${cmd[@]}" 2>>"$out/errors.log" |
        sed -n 's/.*: \(triad \)\{0,1\}\([0-9.]*\) \(Mupdates\|GB\).*/\2/p' || true
}
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }

for c in "${configs[@]}"; do : >"$out/$c.gups"; : >"$out/$c.stream"; done
: >"$out/errors.log"
for r in $(seq "$runs"); do
    for c in "${configs[@]}"; do
        run "$c" gups "$gups_mib" "$gups_m" 3 >>"$out/$c.gups"
        run "$c" stream "$stream_mib" 30 >>"$out/$c.stream"
    done
    echo "memory.sh: run $r of $runs done"
done

g4=$(median <"$out/native-4k.gups")
gt=$(median <"$out/native-thp.gups")
s4=$(median <"$out/native-4k.stream")
st=$(median <"$out/native-thp.stream")
echo
echo "gups: table $gups_mib MiB, ${gups_m}M updates x 3 (best); stream: triad over 3 x $stream_mib MiB x 30 (best)"
echo "$runs runs alternating, medians; guest RAM $memory; all runs on host CPU $cpu"
printf '%-11s %-12s %12s %9s %9s   %10s %9s %9s   %s\n' config backing "gups Mup/s" "/nat-4k" "/nat-thp" "triad GB/s" "/nat-4k" "/nat-thp" "guest faults"
for c in "${configs[@]}"; do
    if [ ! -s "$out/$c.gups" ] || [ ! -s "$out/$c.stream" ]; then
        echo "$c: no result (see $out/errors.log)"
        continue
    fi
    g=$(median <"$out/$c.gups")
    s=$(median <"$out/$c.stream")
    backing=native
    faults=-
    if [ -f "$out/$c-gups.json" ]; then
        backing=$(sed -n 's/.*"memory_backing": *"\([^"]*\)".*/\1/p' "$out/$c-gups.json")
        faults=$(sed -n 's/.*"guest_page_faults": *\([0-9]*\).*/\1/p' "$out/$c-gups.json")
    fi
    awk -v c="$c" -v b="$backing" -v g="$g" -v s="$s" -v g4="$g4" -v gt="$gt" -v s4="$s4" -v st="$st" -v f="$faults" 'BEGIN {
        printf "%-11s %-12s %12.2f %9.3f %9.3f   %10.2f %9.3f %9.3f   %s\n", c, b, g, g / g4, g / gt, s, s / s4, s / st, f }'
done
