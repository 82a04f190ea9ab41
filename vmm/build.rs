//! Builds the guest kernel (`guest-lwk/`, target x86_64-unknown-none, release profile) with a
//! nested cargo and hands its path to the VMM, which embeds it with `include_bytes!`, so one
//! `cargo build` produces one self-contained `lwk-vmm` binary.
//!
//! The guest is not a workspace member: it needs its own target, panic strategy and rustflags
//! (guest-lwk/.cargo/config.toml), which a workspace member cannot have on stable.

use std::env;
use std::path::PathBuf;
use std::process::Command;

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

    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let mut cmd = Command::new(cargo);
    cmd.current_dir(&guest_dir)
        .args([
            "build",
            "--release",
            "--target",
            "x86_64-unknown-none",
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
    let status = cmd
        .status()
        .expect("failed to run cargo for the guest kernel");
    assert!(
        status.success(),
        "building the guest kernel (guest-lwk) failed"
    );

    let elf = target_dir.join("x86_64-unknown-none/release/guest-lwk");
    println!("cargo:rustc-env=LWK_GUEST_ELF={}", elf.display());
}
