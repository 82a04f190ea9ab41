#!/usr/bin/env bash
# Benchmark (not a test), native vs lwk-vmm in one run: the cost of processes.
#  1. inside one job, N iterations each (tests/bench/forkexec.c times every iteration):
#     fork + _exit + waitpid; fork + execve(static hello) + waitpid; posix_spawn(static hello) +
#     waitpid; fork + execve(/bin/ls of a small directory, dynamically linked) + waitpid;
#  2. start-to-exit of whole jobs, M runs alternating: /bin/ls of the same directory (a dynamic
#     program, no fork) and `/bin/sh -c 'ls DIR | wc -l'` (dash forks and execs two programs).
# lwk-vmm runs with --cpus 2 --oversubscribe timeslice (--cpus 1 on a one-core host). Prints
# medians, the ratio, and VM exits per iteration from --stats-json; a row whose lwk-vmm run fails
# says so instead of printing a time.
# Usage: tests/bench/process.sh [N] [M]   (builds lwk-vmm --release and the helpers first)
# Absolute times on the nested kvm_pvm development machines say nothing about hardware KVM (guest
# ring 0 is emulated there, ~0.5 us per instruction): compare ratios and counts.
set -euo pipefail
n=${1:-200}
m=${2:-10}
repo=$(cd "$(dirname "$0")/../.." && pwd)
out="$repo/target/bench"
mkdir -p "$out"
(cd "$repo" && cargo build --release -q)
gcc -static -O2 -Wall -o "$out/forkexec" "$repo/tests/bench/forkexec.c"
gcc -static -O2 -Wall -o "$out/hello-static" "$repo/tests/programs/hello.c"
lwk="$repo/target/release/lwk-vmm"
cpus=$(($(nproc) >= 2 ? 2 : 1))
lwk_run=("$lwk" run --cpus "$cpus" --oversubscribe timeslice --stats-json "$out/process.json")

dir="$out/process-fixture"
rm -rf "$dir"
mkdir -p "$dir/sub"
printf 'a\n' >"$dir/a.txt"
printf 'b\n' >"$dir/b.txt"

now_us() { local t=${EPOCHREALTIME/./}; echo "${t}"; }
median() { sort -n | awk '{a[NR]=$1} END {if (NR%2) print a[(NR+1)/2]; else print (a[NR/2]+a[NR/2+1])/2}'; }
field() { sed -n "s/.*\"$1\": *\([0-9]*\).*/\1/p" "$out/process.json" | head -n1; }
us_of() { sed -n 's/.*median \([0-9.]*\) us.*/\1/p'; }

echo "lwk-vmm: --cpus $cpus --oversubscribe timeslice; $n iterations per in-job row, $m runs per whole-job row"

# 1. Inside one job.
inner() {
    local name=$1
    shift
    local nat lwk_out vm exits
    nat=$("$out/forkexec" "$@" | us_of)
    rm -f "$out/process.json"
    if lwk_out=$("${lwk_run[@]}" "$out/forkexec" "$@" 2>"$out/process.err"); then
        vm=$(echo "$lwk_out" | us_of)
        exits=$(field vm_exits)
        awk -v l="$name" -v a="$nat" -v b="$vm" -v e="$exits" -v n="$n" 'BEGIN {
            printf "%-34s native %9.1f us   lwk-vmm %9.1f us   ratio %6.1fx   vm_exits/iteration %.1f\n",
                l, a, b, b / a, e / n }'
    else
        awk -v l="$name" -v a="$nat" 'BEGIN {
            printf "%-34s native %9.1f us   lwk-vmm FAILED (see target/bench/process.err)\n", l, a }'
    fi
}
inner "fork + _exit + wait" fork "$n"
inner "fork + execve(static hello) + wait" exec "$n" "$out/hello-static"
inner "posix_spawn(static hello) + wait" spawn "$n" "$out/hello-static"
inner "fork + execve(/bin/ls dir) + wait" exec "$n" /bin/ls "$dir"

# 2. Whole jobs, start to exit.
whole() {
    local name=$1
    shift
    : >"$out/native.txt"
    : >"$out/lwk.txt"
    local failed=0
    for _ in $(seq "$m"); do
        t0=$(now_us); "$@" >/dev/null; t1=$(now_us)
        echo $((t1 - t0)) >>"$out/native.txt"
        t0=$(now_us)
        if ! "${lwk_run[@]}" "$@" >/dev/null 2>"$out/process.err"; then failed=1; fi
        t1=$(now_us)
        echo $((t1 - t0)) >>"$out/lwk.txt"
    done
    local nat vm
    nat=$(median <"$out/native.txt")
    vm=$(median <"$out/lwk.txt")
    if [ "$failed" = 0 ]; then
        awk -v l="$name" -v a="$nat" -v b="$vm" -v e="$(field vm_exits)" 'BEGIN {
            printf "%-34s native %9.2f ms   lwk-vmm %9.2f ms   ratio %6.1fx   vm_exits %s\n",
                l, a / 1000, b / 1000, b / a, e }'
    else
        awk -v l="$name" -v a="$nat" 'BEGIN {
            printf "%-34s native %9.2f ms   lwk-vmm FAILED (see target/bench/process.err)\n", l, a / 1000 }'
    fi
}
whole "/bin/ls dir (whole job)" /bin/ls "$dir"
whole "sh -c 'ls dir | wc -l' (whole job)" /bin/sh -c "ls '$dir' | wc -l"
