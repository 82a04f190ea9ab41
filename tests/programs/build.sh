#!/bin/sh
# Builds every test program in this directory into OUTDIR, statically, once per C library:
#   <stem>-glibc  (gcc -static)        <stem>-musl  (musl-gcc -static, when musl-gcc exists)
# and writes OUTDIR/manifest.tsv: one line per binary, "<binary><TAB><args><TAB><lwk-vmm options>",
# where <args> comes from the program's optional `// args: ...` line and <lwk-vmm options> from
# its optional `// lwk-vmm: ...` line (options for `lwk-vmm run`, e.g. --cpus 2); both
# whitespace-separated, no quoting; an empty field is written as "-" (shells collapse empty
# tab-separated fields).
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
    lwkargs=$(sed -n 's|^// lwk-vmm: *||p' "$src" | head -n 1)
    extra=
    if grep -q '^// needs: openmp' "$src"; then extra=-fopenmp; fi
    for libc in glibc musl; do
        # OpenMP programs are built against glibc only (Debian's musl has no libgomp).
        if [ -n "$extra" ] && [ "$libc" = musl ]; then continue; fi
        case $libc in
            glibc) cc=gcc ;;
            musl) cc=musl-gcc ;;
        esac
        command -v "$cc" >/dev/null 2>&1 || { echo "build.sh: $cc not found, skipping $stem-$libc" >&2; continue; }
        bin="$out/$stem-$libc"
        if [ ! -e "$bin" ] || [ "$src" -nt "$bin" ] || [ "$here/check.h" -nt "$bin" ]; then
            "$cc" -static -O2 -Wall -Werror $extra -pthread -o "$bin.tmp" "$src" -lm
            mv "$bin.tmp" "$bin"
        fi
        printf '%s\t%s\t%s\n' "$stem-$libc" "${args:--}" "${lwkargs:--}" >>"$manifest"
    done
done
mv "$manifest" "$out/manifest.tsv"
