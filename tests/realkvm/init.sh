#!/bin/sh
# /init of the real-KVM tier's initramfs (packed by tests/realkvm/run.sh; runs inside QEMU TCG).
# Loads kvm_amd (nested SVM), then runs every program of /progs/manifest.tsv natively and under
# lwk-vmm, and prints one machine-readable line per fact on the serial console, each starting
# with "REALKVM: ". run.sh parses those lines. Busybox ash; ends with poweroff -f, never exits.
export PATH=/bin:/sbin
export HOME=/ TERM=linux

mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
exec </dev/null >/dev/console 2>&1

say() { echo "REALKVM: $*"; }
detail() { sed 's/^/REALKVM:   | /'; }
finish() {
    say END
    sync
    poweroff -f
    sleep 5
}

# run.sh passes the per-run timeout on the kernel command line (realkvm.timeout=SECONDS).
# realkvm.skip=N: a boot after a hung one starts at test N+1 (the earlier ones reported).
test_timeout=60
skip=0
read -r cmdline </proc/cmdline
for w in $cmdline; do
    case $w in
        realkvm.timeout=*) test_timeout=${w#realkvm.timeout=} ;;
        realkvm.skip=*) skip=${w#realkvm.skip=} ;;
    esac
done

say "BOOTED kernel $(uname -r), $(grep -c . /progs/manifest.tsv) tests, per-run timeout ${test_timeout}s"
grep -qw svm /proc/cpuinfo || say "note: the CPU shows no svm flag"

for m in irqbypass kvm kvm-amd; do
    if ! insmod "/modules/$m.ko" >/tmp/insmod.err 2>&1; then
        say "insmod $m failed:"
        detail </tmp/insmod.err
    fi
done
if [ ! -c /dev/kvm ]; then
    say "kvm_amd did not load"
    dmesg | tail -n 20 | detail
    finish
fi
say "kvm_amd loaded, /dev/kvm present"

# No kernel chatter in the middle of the result lines from here on (dmesg keeps it).
echo 1 >/proc/sys/kernel/printk

# Same environment for both runs: this script's exported variables plus these.
export LWK_TEST_VAR=hello
export RUST_BACKTRACE=1

uptime_cs() { awk '{ split($1, a, "."); print a[1] * 100 + a[2] }' /proc/uptime; }
secs() { awk -v d="$1" 'BEGIN { printf "%.2f", d / 100 }'; }

mkdir -p /tmp/run
cd /tmp/run || finish
tab=$(printf '\t')
passed=0
failed=0
set -f  # args are split on whitespace and never globbed
index=0
while IFS=$tab read -r name args lwkargs; do
    [ -n "$name" ] || continue
    index=$((index + 1))
    [ "$index" -gt "$skip" ] || continue
    [ "$args" = - ] && args=
    [ "$lwkargs" = - ] && lwkargs=
    prog=/progs/$name
    say "RUN $name"
    rm -f /tmp/stats.json /tmp/n.out /tmp/n.err /tmp/l.out /tmp/l.err

    t0=$(uptime_cs)
    # shellcheck disable=SC2086 # args are whitespace-separated by the manifest's definition
    timeout -k 5 "$test_timeout" "$prog" $args </dev/null >/tmp/n.out 2>/tmp/n.err
    nrc=$?
    t1=$(uptime_cs)
    # shellcheck disable=SC2086
    timeout -k 5 "$test_timeout" /bin/lwk-vmm run --stats-json /tmp/stats.json $lwkargs "$prog" $args \
        </dev/null >/tmp/l.out 2>/tmp/l.err
    lrc=$?
    t2=$(uptime_cs)
    native_cs=$((t1 - t0))
    if [ $((t2 - t1)) -ge $((test_timeout * 100)) ] && [ -f /tmp/stats.json ]; then
        # What the hung run did (its stats file is written when the forwarded SIGTERM ends it).
        say "lwk-vmm run of $name timed out; its counters:"
        tr '\n' ' ' </tmp/stats.json | tr ',' '\n' |
            grep -E '"(vm_exits|guest_timer_interrupts|context_switches|submitted|completed)"' |
            tr -d ' ' | detail
    fi

    entry=
    if [ -f /tmp/stats.json ]; then
        entry=$(tr '\n' ' ' </tmp/stats.json |
            sed -n 's/.*"syscall_entry"[[:space:]]*:[[:space:]]*"\([^"]*\)".*/\1/p' | head -n 1)
    fi
    [ -n "$entry" ] || entry=unknown

    reasons=
    [ "$native_cs" -ge $((test_timeout * 100)) ] && reasons="$reasons native run timed out;"
    [ $((t2 - t1)) -ge $((test_timeout * 100)) ] && reasons="$reasons lwk-vmm run timed out;"
    [ "$nrc" = "$lrc" ] || reasons="$reasons exit status native=$nrc lwk-vmm=$lrc;"
    cmp -s /tmp/n.out /tmp/l.out || reasons="$reasons stdout differs;"
    [ "$entry" = native ] || reasons="$reasons syscall entry is '$entry', not native;"

    if [ -z "$reasons" ]; then
        passed=$((passed + 1))
        say "PASS $name"
        say "syscall entry: $entry"
    else
        failed=$((failed + 1))
        say "FAIL $name"
        say "syscall entry: $entry"
        echo "reason:$reasons" | detail
        echo "exit status: native=$nrc lwk-vmm=$lrc" | detail
        if ! cmp -s /tmp/n.out /tmp/l.out; then
            echo "stdout diff (native < > lwk-vmm):" | detail
            diff /tmp/n.out /tmp/l.out | head -n 20 | cut -c 1-200 | sed 's/^/    /' | detail
            echo "native stdout (first lines):" | detail
            head -n 8 /tmp/n.out | cut -c 1-200 | sed 's/^/    /' | detail
            echo "lwk-vmm stdout (first lines):" | detail
            head -n 8 /tmp/l.out | cut -c 1-200 | sed 's/^/    /' | detail
        fi
        if [ -s /tmp/l.err ]; then
            echo "lwk-vmm stderr (first lines):" | detail
            head -n 15 /tmp/l.err | cut -c 1-200 | sed 's/^/    /' | detail
        else
            echo "lwk-vmm stderr: (empty)" | detail
        fi
        if [ -s /tmp/n.err ] && [ "$nrc" != "$lrc" ]; then
            echo "native stderr (first lines):" | detail
            head -n 5 /tmp/n.err | cut -c 1-200 | sed 's/^/    /' | detail
        fi
    fi
    say "time $name: native $(secs "$native_cs") s, lwk-vmm $(secs $((t2 - t1))) s"
done </progs/manifest.tsv
set +f

# Host signals (issue #7): SIGTERM to lwk-vmm running a program that spins in ring 3 and one
# blocked in read() on an empty pipe ends each like the native program (status 143). SIGTERM,
# not SIGINT: a background job of a non-interactive shell starts with SIGINT ignored.
hostsig_case() { # name prog args... ; stdin is an empty FIFO that this shell keeps open
    hname=$1
    shift
    say "RUN $hname"
    rm -f /tmp/h.out /tmp/h.in
    mkfifo /tmp/h.in
    exec 3<>/tmp/h.in
    /bin/lwk-vmm run "$@" <&3 >/tmp/h.out 2>/tmp/h.err &
    hpid=$!
    i=0
    while ! grep -q ready /tmp/h.out 2>/dev/null && [ $i -lt 400 ]; do
        sleep 0.05
        i=$((i + 1))
    done
    sleep 0.2
    kill -TERM "$hpid"
    k0=$(uptime_cs)
    wait "$hpid"
    hrc=$?
    k1=$(uptime_cs)
    exec 3>&-
    if [ "$hrc" = 143 ]; then
        passed=$((passed + 1))
        say "PASS $hname"
    else
        failed=$((failed + 1))
        say "FAIL $hname"
        echo "reason: lwk-vmm ended with status $hrc, not 143 (SIGTERM)" | detail
        head -n 10 /tmp/h.err | cut -c 1-200 | sed 's/^/    /' | detail
    fi
    say "time $hname: SIGTERM to exit $(secs $((k1 - k0))) s"
}
[ -x /progs/sig_spin-glibc ] && hostsig_case hostsig-spin /progs/sig_spin-glibc 30000
[ -x /progs/sig_block_read-musl ] && hostsig_case hostsig-blocked-read /progs/sig_block_read-musl

say "$passed passed, $failed failed"
finish
