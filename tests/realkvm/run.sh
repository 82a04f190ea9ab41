#!/usr/bin/env bash
# The real-KVM test tier: boots a Debian cloud kernel under QEMU TCG with an AMD-SVM CPU model,
# loads kvm_amd inside it and runs every test program (tests/programs/build.sh's one list)
# natively and under lwk-vmm there, where guest ring 0 and `syscall` behave as on hardware KVM.
# See docs/REALKVM.md. Usage: tests/realkvm/run.sh   (as root; no arguments)
#
# Environment:
#   LWK_VMM_BIN            use this (static) lwk-vmm binary instead of building one
#   REALKVM_ONLY           extended regex; run only the manifest entries whose name matches
#   REALKVM_TEST_TIMEOUT   seconds for each single run inside the guest (default 60)
#   REALKVM_BOOT_TIMEOUT   seconds until the guest must have started /init (default 60)
#   REALKVM_TIMEOUT        seconds for one whole boot (default 600: 117 programs take ~150 s on an
#                          idle machine, more than twice that when the cores are shared)
#   REALKVM_CACHE          cache directory (default <repo>/target/realkvm-cache)
#   REALKVM_SMP            guest CPUs (default 2: the thread tests run 2 vCPUs on 2 cores)
#   REALKVM_ATTEMPTS       boots to try when the guest hangs as a whole or does not boot (default 5)
#   REALKVM_QEMU_CPU       QEMU -cpu model (default max; e.g. qemu64,-svm checks the harness's
#                          "kvm_amd did not load" path)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
cache=${REALKVM_CACHE:-$repo/target/realkvm-cache}
test_timeout=${REALKVM_TEST_TIMEOUT:-60}
boot_timeout=${REALKVM_BOOT_TIMEOUT:-60}
run_timeout=${REALKVM_TIMEOUT:-600}
# No console output for this long means the guest hung: each run inside is bounded by
# test_timeout (+5 s to KILL), and a test prints a line at its start and at its end.
stall_timeout=$((2 * (test_timeout + 5) + 30))
t_start=$SECONDS

say() { echo "realkvm: $*"; }
die() {
    echo "realkvm: ERROR: $*" >&2
    echo "realkvm: FAILED (the tier did not run its tests)" >&2
    exit 1
}

mkdir -p "$cache"

# --- 1. host tools (Debian packages) ------------------------------------------------------------
is_static() { # true if $1 is an ELF executable with no program interpreter and no DT_NEEDED
    local f=$1
    if command -v readelf >/dev/null 2>&1; then
        readelf -h "$f" >/dev/null 2>&1 || return 1
        ! readelf -lW "$f" 2>/dev/null | grep -q 'INTERP' &&
            ! readelf -dW "$f" 2>/dev/null | grep -q '(NEEDED)'
    elif command -v file >/dev/null 2>&1; then
        file -L "$f" | grep -Eq 'statically linked|static-pie linked'
    else
        if ldd "$f" >/dev/null 2>&1; then return 1; fi
    fi
}
apt_install() {
    say "installing Debian packages: $*"
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q --no-install-recommends "$@" >"$cache/apt.log" 2>&1 ||
        { apt-get update -q >>"$cache/apt.log" 2>&1 &&
            apt-get install -y -q --no-install-recommends "$@" >>"$cache/apt.log" 2>&1; } ||
        die "apt-get install $* failed; see $cache/apt.log"
}
find_busybox() {
    local b
    for b in /bin/busybox /usr/bin/busybox "$(command -v busybox 2>/dev/null || true)"; do
        if [ -n "$b" ] && [ -x "$b" ] && is_static "$b"; then
            echo "$b"
            return 0
        fi
    done
    return 1
}
missing=()
command -v qemu-system-x86_64 >/dev/null 2>&1 || missing+=(qemu-system-x86)
find_busybox >/dev/null || missing+=(busybox-static)
command -v cpio >/dev/null 2>&1 || missing+=(cpio)
command -v gzip >/dev/null 2>&1 || missing+=(gzip)
if [ ${#missing[@]} -gt 0 ]; then apt_install "${missing[@]}"; fi
busybox=$(find_busybox) || die "no statically linked busybox after installing busybox-static"

# --- 2. the kernel and its KVM modules (cached) -------------------------------------------------
kdir=$cache/kernel
mods=(irqbypass kvm kvm-amd)
kernel_cached() {
    [ -s "$kdir/vmlinuz" ] || return 1
    local m
    for m in "${mods[@]}"; do [ -s "$kdir/$m.ko" ] || return 1; done
}
fetch_kernel() {
    local tmp pkgs pkg deb m src
    tmp=$cache/kernel-dl
    rm -rf "$tmp"
    mkdir -p "$tmp"
    list_pkgs() {
        apt-cache pkgnames linux-image-6.1.0- 2>/dev/null |
            grep -E '^linux-image-6\.1\.0-[0-9]+-cloud-amd64$' | sort -V -r || true
    }
    pkgs=$(list_pkgs)
    if [ -z "$pkgs" ]; then
        say "apt-cache knows no linux-image-6.1.0-*-cloud-amd64; running apt-get update"
        apt-get update -q >"$cache/apt.log" 2>&1 || die "apt-get update failed; see $cache/apt.log"
        pkgs=$(list_pkgs)
    fi
    [ -n "$pkgs" ] || die "no linux-image-6.1.0-*-cloud-amd64 package in the Debian lists"
    deb=
    for pkg in $pkgs; do # newest first; fall back if one cannot be downloaded
        say "downloading $pkg (apt-get download, not installed)"
        if (cd "$tmp" && apt-get download -q -o APT::Sandbox::User=root "$pkg" >"$cache/apt.log" 2>&1); then
            deb=$(ls "$tmp"/*.deb)
            break
        fi
        say "could not download $pkg; trying an older one"
    done
    [ -n "$deb" ] || die "could not download any cloud-amd64 kernel; see $cache/apt.log"
    dpkg -x "$deb" "$tmp/x" || die "dpkg -x $deb failed"
    rm -rf "$kdir.new"
    mkdir -p "$kdir.new"
    src=$(find "$tmp/x" -path '*/boot/vmlinuz-*' -type f | head -n 1)
    [ -n "$src" ] || die "no /boot/vmlinuz-* in $deb"
    cp "$src" "$kdir.new/vmlinuz"
    for m in "${mods[@]}"; do
        src=$(find "$tmp/x" -path '*/lib/modules/*' \( -name "$m.ko" -o -name "$m.ko.xz" \
            -o -name "$m.ko.zst" -o -name "$m.ko.gz" \) | head -n 1)
        [ -n "$src" ] || die "module $m not found in $deb"
        case $src in
            *.xz) xz -dc "$src" >"$kdir.new/$m.ko" ;;
            *.zst) zstd -q -dc "$src" >"$kdir.new/$m.ko" ;;
            *.gz) gzip -dc "$src" >"$kdir.new/$m.ko" ;;
            *) cp "$src" "$kdir.new/$m.ko" ;;
        esac || die "could not decompress $src (xz-utils/zstd missing?)"
    done
    basename "$deb" >"$kdir.new/VERSION"
    rm -rf "$kdir"
    mv "$kdir.new" "$kdir"
    rm -rf "$tmp"
}
if kernel_cached; then
    say "kernel: cached $(cat "$kdir/VERSION" 2>/dev/null || echo '(unknown version)')"
else
    fetch_kernel
    kernel_cached || die "kernel cache incomplete after download"
    say "kernel: $(cat "$kdir/VERSION") unpacked into $kdir"
fi

# --- 3. a static lwk-vmm ------------------------------------------------------------------------
if [ -n "${LWK_VMM_BIN:-}" ]; then
    vmm=$LWK_VMM_BIN
    [ -x "$vmm" ] || die "LWK_VMM_BIN=$vmm is not an executable file"
    say "lwk-vmm: using LWK_VMM_BIN=$vmm"
else
    say "lwk-vmm: building a static binary (target/realkvm-build)"
    if ! (cd "$repo" && RUSTFLAGS="-C target-feature=+crt-static" cargo build --release \
        --target x86_64-unknown-linux-gnu --target-dir "$repo/target/realkvm-build" -p lwk-vmm) \
        >"$cache/build.log" 2>&1; then
        tail -n 30 "$cache/build.log" >&2
        die "cargo build of the static lwk-vmm failed; full log in $cache/build.log"
    fi
    vmm=$repo/target/realkvm-build/x86_64-unknown-linux-gnu/release/lwk-vmm
fi
is_static "$vmm" || die "$vmm is not statically linked (the initramfs has no C library): $(file -L "$vmm" 2>/dev/null)"

# --- 4. the test programs: the project's one list -----------------------------------------------
progs=$cache/progs
"$repo/tests/programs/build.sh" "$progs" >"$cache/progs.log" 2>&1 ||
    { cat "$cache/progs.log" >&2; die "tests/programs/build.sh failed"; }
[ -s "$progs/manifest.tsv" ] || die "tests/programs/build.sh wrote no manifest entries"

# --- 5. the initramfs ---------------------------------------------------------------------------
root=$cache/initramfs
rm -rf "$root"
mkdir -p "$root"/{bin,sbin,dev,proc,sys,tmp,etc,root,progs,modules}
cp "$busybox" "$root/bin/busybox"
for applet in $("$busybox" --list); do
    [ -e "$root/bin/$applet" ] || ln -s busybox "$root/bin/$applet"
done
[ -L "$root/bin/sh" ] || die "busybox provides no sh applet"
cp "$vmm" "$root/bin/lwk-vmm"
cp "$here/init.sh" "$root/init"
chmod 755 "$root/init" "$root/bin/lwk-vmm"
for m in "${mods[@]}"; do cp "$kdir/$m.ko" "$root/modules/"; done
printf 'root:x:0:0:root:/root:/bin/sh\n' >"$root/etc/passwd"
printf 'root:x:0:\n' >"$root/etc/group"
tab=$(printf '\t')
while IFS=$tab read -r name args lwkargs; do
    [ -n "$name" ] || continue
    if [ -n "${REALKVM_ONLY:-}" ] && ! printf '%s\n' "$name" | grep -Eq -- "$REALKVM_ONLY"; then
        continue
    fi
    is_static "$progs/$name" || die "$progs/$name is not statically linked"
    cp "$progs/$name" "$root/progs/"
    printf '%s\t%s\t%s\n' "$name" "$args" "$lwkargs" >>"$root/progs/manifest.tsv"
done <"$progs/manifest.tsv"
[ -s "$root/progs/manifest.tsv" ] || die "no test selected (REALKVM_ONLY='${REALKVM_ONLY:-}')"
ntests=$(grep -c . "$root/progs/manifest.tsv")
initrd=$cache/initrd.cpio.gz
(cd "$root" && find . -print0 | LC_ALL=C sort -z | cpio --null -o -H newc --owner=0:0 --quiet) |
    gzip -6 >"$initrd.tmp"
mv "$initrd.tmp" "$initrd"
say "initramfs: $ntests tests, $(($(stat -c %s "$initrd") / 1024)) KiB ($initrd)"

# --- 6. boot (retried if the guest did not boot or hung) -----------------------------------------
# boot LOG: runs QEMU once, streams the guest's REALKVM lines, sets $outcome to one of
#   finished (end marker seen), noboot, stall, timeout, exited (QEMU ended without the end marker).
boot() {
    local logf=$1 tpid t0 now size last_size=-1 last_change end_at=
    : >"$logf"
    qemu-system-x86_64 -accel tcg -cpu "${REALKVM_QEMU_CPU:-max}" -machine pc -m 2G -smp "${REALKVM_SMP:-2}" -nographic -no-reboot \
        -kernel "$kdir/vmlinuz" -initrd "$initrd" \
        -append "console=ttyS0 panic=-1 quiet realkvm.timeout=$test_timeout realkvm.skip=$skip" \
        </dev/null >"$logf" 2>&1 &
    qpid=$!
    tail -n +1 -s 0.3 -F --pid="$qpid" "$logf" 2>/dev/null |
        sed -u -n '/REALKVM: /{ s/\r$//; s/REALKVM: /\n/; s/^.*\n/  guest: /; p; }' &
    tpid=$!
    outcome=exited
    t0=$SECONDS
    last_change=$t0
    while kill -0 "$qpid" 2>/dev/null; do
        sleep 1
        now=$SECONDS
        size=$(stat -c %s "$logf")
        if [ "$size" != "$last_size" ]; then
            last_size=$size
            last_change=$now
        fi
        if grep -q '^REALKVM: END' "$logf"; then
            outcome=finished
            # poweroff -f normally ends QEMU at once; don't wait forever if it does not.
            [ -n "$end_at" ] || end_at=$now
            if [ $((now - end_at)) -ge 20 ]; then
                say "guest printed its end marker but QEMU did not exit; killing it"
                kill "$qpid" 2>/dev/null || true
            fi
        elif ! grep -q 'REALKVM: BOOTED' "$logf" && [ $((now - t0)) -ge "$boot_timeout" ]; then
            outcome=noboot
            kill "$qpid" 2>/dev/null || true
        elif [ $((now - last_change)) -ge "$stall_timeout" ]; then
            outcome=stall
            kill "$qpid" 2>/dev/null || true
        elif [ $((now - t0)) -ge "$run_timeout" ]; then
            outcome=timeout
            kill "$qpid" 2>/dev/null || true
        fi
    done
    wait "$qpid" 2>/dev/null || true
    qpid=
    wait "$tpid" 2>/dev/null || true
    tr -d '\r' <"$logf" >"$logf.tmp" && mv "$logf.tmp" "$logf"
    if grep -q '^REALKVM: END' "$logf"; then
        outcome=finished
    elif ! grep -q 'REALKVM: BOOTED' "$logf"; then
        outcome=noboot
    fi
    boot_secs=$((SECONDS - t0))
}
qpid=
# An interrupted run must not leave QEMU behind.
trap '[ -z "$qpid" ] || kill "$qpid" 2>/dev/null || true' EXIT
trap 'exit 130' INT TERM
log=$cache/console.log
rm -f "$cache"/console.attempt*.log
say "booting qemu-system-x86_64 (TCG, -cpu ${REALKVM_QEMU_CPU:-max}: nested AMD SVM); console log: $log"
# The nested guest rarely hangs as a whole (TCG with -smp 2, see docs/REALKVM.md); with 100+
# runs per boot that is worth up to REALKVM_ATTEMPTS boots (default 5). A new boot resumes
# after the last test that reported a result (realkvm.skip=N; the hung test runs again), so a
# test that hangs the guest every time still fails the tier. A failed or timed-out test is
# reported by the guest and never retried.
max_attempts=${REALKVM_ATTEMPTS:-5}
attempts=1
skip=0
boot "$log"
while { [ "$outcome" = noboot ] || [ "$outcome" = stall ]; } && [ "$attempts" -lt "$max_attempts" ]; do
    mv "$log" "$cache/console.attempt$attempts.log"
    skip=$((skip + $(grep -c '^REALKVM: \(PASS\|FAIL\) ' "$cache/console.attempt$attempts.log" || true)))
    say "attempt $attempts: guest $([ "$outcome" = noboot ] && echo 'did not boot' || echo 'hung') after ${boot_secs}s; booting again from test $((skip + 1)) (log: $cache/console.attempt$attempts.log)"
    attempts=$((attempts + 1))
    boot "$log"
done
say "boot + tests: ${boot_secs}s (attempt $attempts, outcome: $outcome)"

# --- 7. verdict ---------------------------------------------------------------------------------
problems=()
# Results of every attempt (each resumed where the one before stopped).
results=$(cat $(seq -f "$cache/console.attempt%g.log" 1 $((attempts - 1))) "$log" 2>/dev/null |
    sed -n 's/^REALKVM: \(PASS\|FAIL\) \(.*\)$/\1 \2/p')
passed=$(printf '%s\n' "$results" | grep -c '^PASS ' || true)
failed_names=$(printf '%s\n' "$results" | sed -n 's/^FAIL //p')
ran=$(printf '%s\n' "$results" | grep -c . || true)
case $outcome in
    noboot) problems+=("the guest did not boot (no BOOTED marker; see the console lines above)") ;;
    stall) problems+=("the guest hung: no console output for ${stall_timeout}s") ;;
    timeout) problems+=("the guest did not finish within REALKVM_TIMEOUT=${run_timeout}s") ;;
    exited) problems+=("QEMU exited before the guest printed its end marker (guest crash?)") ;;
esac
grep -q '^REALKVM: kvm_amd did not load' "$log" && problems+=("kvm_amd did not load inside the guest")
[ "$ran" -gt 0 ] || problems+=("zero tests ran")
[ "$ran" -ge "$ntests" ] || problems+=("only $ran of $ntests tests reported a result")
if [ "$outcome" = noboot ] || [ "$outcome" = exited ]; then
    echo "realkvm: last console lines:"
    tail -n 15 "$log" | sed 's/^/  console: /'
fi
if [ -n "$(sed -n 's/^REALKVM: RUN //p' "$log" | tail -n 1)" ] && [ "$outcome" != finished ]; then
    say "last test started: $(sed -n 's/^REALKVM: RUN //p' "$log" | tail -n 1)"
fi

# Every reported FAIL counts (the results also hold tests beyond the manifest, such as the host
# signal checks, so "manifest size minus passes" undercounts); missing results are a problem above.
nfail=$(printf '%s
' "$failed_names" | grep -c . || true)
echo
say "summary ($((SECONDS - t_start))s total, kernel $(cat "$kdir/VERSION"))"
for n in $failed_names; do echo "  FAIL $n"; done
for p in ${problems[@]+"${problems[@]}"}; do echo "  PROBLEM: $p"; done
echo "$passed passed, $nfail failed"
if [ ${#problems[@]} -gt 0 ] || [ "$nfail" -gt 0 ]; then
    exit 1
fi
exit 0
