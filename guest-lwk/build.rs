//! Links the kernel with its linker script (absolute path, so the build works from any cwd) and
//! builds the vDSO (`vdso/`) with the C compiler into OUT_DIR, for `src/vdso.rs` to embed.
use std::path::PathBuf;
use std::process::Command;

fn main() {
    let dir = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    println!("cargo:rustc-link-arg=-T{dir}/linker.ld");
    println!("cargo:rustc-link-arg=--no-relax");
    println!("cargo:rerun-if-changed=linker.ld");
    build_vdso(&PathBuf::from(dir));
}

/// Compiles vdso/vdso.c into a position-independent shared object without libc, laid out by
/// vdso/vdso.lds (one PT_LOAD, the LINUX_2.6 version glibc and musl look up, SysV and GNU hash
/// tables). The LWK maps it unrelocated, so a relocation in the output is a build error.
fn build_vdso(dir: &std::path::Path) {
    let src = dir.join("vdso");
    for f in ["vdso.c", "vdso.lds", "vvar.h"] {
        println!("cargo:rerun-if-changed=vdso/{f}");
    }
    println!("cargo:rerun-if-env-changed=CC");
    let out = PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("vdso.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "gcc".into());
    let status = Command::new(&cc)
        .current_dir(&src)
        .args([
            "-O2",
            "-fPIC",
            "-ffreestanding",
            "-fno-builtin",
            "-fno-stack-protector",
            "-fno-asynchronous-unwind-tables",
            "-fno-unwind-tables",
            "-fcf-protection=none",
            "-nostdlib",
            "-shared",
            "-Wall",
            "-Werror",
            "-Wl,-T,vdso.lds",
            "-Wl,--hash-style=both",
            "-Wl,-soname=linux-vdso.so.1",
            "-Wl,--no-undefined",
            "-Wl,-z,max-page-size=4096",
            "-Wl,-z,noexecstack",
            "-Wl,--build-id=none",
            "-Wl,-Bsymbolic",
            "-o",
        ])
        .arg(&out)
        .arg("vdso.c")
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}` for the vDSO: {e}"));
    assert!(
        status.success(),
        "building the vDSO (guest-lwk/vdso) failed"
    );
    let bytes = std::fs::read(&out).expect("the vDSO was just built");
    assert!(
        !bytes.windows(5).any(|w| w == b".rela"),
        "the vDSO has relocations; the LWK maps it unrelocated"
    );
    assert!(
        bytes.len() <= 2 * 4096,
        "the vDSO outgrew the two pages the LWK maps"
    );
    println!("cargo:rustc-env=LWK_VDSO={}", out.display());
}
