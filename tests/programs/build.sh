#!/bin/sh
# Builds every test program in this directory into OUTDIR, statically, once per C library:
#   <stem>-glibc  (gcc -static)        <stem>-musl  (musl-gcc -static, when musl-gcc exists)
# and writes OUTDIR/manifest.tsv: one line per binary, "<binary><TAB><args>", where <args> comes
# from the program's optional `// args: ...` line (whitespace-separated, no quoting).
# This is the one list of integration programs: the KVM tier (tests/integration) and the
# real-KVM tier (tests/realkvm/run.sh) both run exactly what this script builds.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
out=${1:?usage: build.sh OUTDIR}
mkdir -p "$out"
manifest="$out/manifest.tsv.tmp"
: >"$manifest"
for src in "$here"/*.c; do
    stem=$(basename "$src" .c)
    args=$(sed -n 's|^// args: *||p' "$src" | head -n 1)
    for libc in glibc musl; do
        case $libc in
            glibc) cc=gcc ;;
            musl) cc=musl-gcc ;;
        esac
        command -v "$cc" >/dev/null 2>&1 || { echo "build.sh: $cc not found, skipping $stem-$libc" >&2; continue; }
        bin="$out/$stem-$libc"
        if [ ! -e "$bin" ] || [ "$src" -nt "$bin" ] || [ "$here/check.h" -nt "$bin" ]; then
            "$cc" -static -O2 -Wall -Werror -o "$bin.tmp" "$src"
            mv "$bin.tmp" "$bin"
        fi
        printf '%s\t%s\n' "$stem-$libc" "$args" >>"$manifest"
    done
done
mv "$manifest" "$out/manifest.tsv"
