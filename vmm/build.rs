//! Builds the guest kernel (`guest-lwk/`, target x86_64-unknown-none, release profile) with a
//! nested cargo and hands its path to the VMM, which embeds it with `include_bytes!`, so one
//! `cargo build` produces one self-contained `lwk-vmm` binary.
//!
//! The guest is not a workspace member: it needs its own target, panic strategy and rustflags
//! (guest-lwk/.cargo/config.toml), which a workspace member cannot have on stable.

use std::env;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The guest kernel's target. Its precompiled `core` comes from rustup.
const GUEST_TARGET: &str = "x86_64-unknown-none";

/// Where the active toolchain keeps the guest target's precompiled libraries, if rustc says.
fn target_libdir(rustc: &std::ffi::OsStr) -> Option<PathBuf> {
    let out = Command::new(rustc)
        .args(["--print", "target-libdir", "--target", GUEST_TARGET])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    let dir = String::from_utf8(out.stdout).ok()?;
    Some(PathBuf::from(dir.trim()))
}

/// True when `dir` holds a precompiled `core` (libcore-*.rlib).
fn has_core(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries.flatten().any(|e| {
            let name = e.file_name();
            let name = name.to_string_lossy();
            name.starts_with("libcore-") && name.ends_with(".rlib")
        })
    })
}

/// Stops the build with one clear line (no panic backtrace).
fn fail(msg: &str) -> ! {
    eprintln!("error: {msg}");
    println!("cargo:warning={msg}");
    std::process::exit(1);
}

/// Makes sure the active toolchain has the guest target: rust-toolchain.toml names it, but
/// rustup installs a toolchain file's `targets` only when it installs the toolchain itself, so
/// a machine that already had `stable` lacks it. Adds it with rustup for the toolchain this
/// build runs under (RUSTUP_TOOLCHAIN, set by rustup's proxies).
fn ensure_guest_target() {
    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    if target_libdir(&rustc).is_some_and(|d| has_core(&d)) {
        return;
    }
    let mut rustup = Command::new("rustup");
    rustup.args(["target", "add", GUEST_TARGET]);
    if let Some(toolchain) = env::var_os("RUSTUP_TOOLCHAIN") {
        rustup.arg("--toolchain").arg(toolchain);
    }
    match rustup.status() {
        Ok(s) if s.success() => {}
        Ok(s) => fail(&format!(
            "`rustup target add {GUEST_TARGET}` failed ({s}); the guest kernel needs that target"
        )),
        Err(_) => fail(&format!(
            "the guest kernel needs the {GUEST_TARGET} target and rustup is not here to add it; \
             install that target's rust-std for this toolchain"
        )),
    }
    if !target_libdir(&rustc).is_some_and(|d| has_core(&d)) {
        fail(&format!(
            "rustup added {GUEST_TARGET} but this rustc ({}) still has no `core` for it",
            rustc.to_string_lossy()
        ));
    }
}

fn main() {
    let manifest_dir =
        PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").expect("CARGO_MANIFEST_DIR"));
    let guest_dir = manifest_dir.join("../guest-lwk");
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").expect("OUT_DIR"));
    let target_dir = out_dir.join("guest-target");

    for path in [
        "src",
        "Cargo.toml",
        "build.rs",
        "linker.ld",
        "vdso",
        ".cargo/config.toml",
    ] {
        println!("cargo:rerun-if-changed={}", guest_dir.join(path).display());
    }
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir.join("../offload-bridge/abi/src").display()
    );
    println!(
        "cargo:rerun-if-changed={}",
        manifest_dir
            .join("../offload-bridge/abi/Cargo.toml")
            .display()
    );

    ensure_guest_target();

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest_dir)
        .args([
            "build",
            "--release",
            "--target",
            GUEST_TARGET,
            "--target-dir",
        ])
        .arg(&target_dir);
    // The outer build's flags and wrappers are for the host target; with them set, the guest's
    // own .cargo/config.toml rustflags would be silently ignored.
    for var in [
        "CARGO_ENCODED_RUSTFLAGS",
        "RUSTFLAGS",
        "CARGO_BUILD_RUSTFLAGS",
        "RUSTC_WRAPPER",
        "RUSTC_WORKSPACE_WRAPPER",
        "CARGO_BUILD_TARGET",
        "CARGO_TARGET_DIR",
        "CARGO_MAKEFLAGS",
        "MAKEFLAGS",
        "MFLAGS",
    ] {
        cmd.env_remove(var);
    }
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(_) => fail("building the guest kernel (guest-lwk) failed; its errors are above"),
        Err(e) => fail(&format!("cannot run cargo for the guest kernel: {e}")),
    }

    let elf = target_dir.join(format!("{GUEST_TARGET}/release/guest-lwk"));
    println!("cargo:rustc-env=LWK_GUEST_ELF={}", elf.display());
}
