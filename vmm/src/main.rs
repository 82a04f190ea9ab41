//! `lwk-vmm`: runs an unmodified static Linux x86_64 program on the lwk-vmm light-weight kernel
//! inside a KVM virtual machine, and behaves like the program (stdio, environment, exit status).
//!
//! Modules: `cli` (command line), `config` (TOML job configs merged under the command line),
//! `check` (`lwk-vmm check`), `logging` (messages through `tracing`), `job` (one run: program check, VM construction, outcome),
//! `program` (finding and checking the program inside the job root), `memory` (guest RAM and
//! its host backing), `boot` (LWK image, page tables, boot info, initial stack block), `vcpu`
//! (vCPU state and the exit loop), `stats` (`--stats-json`), `signals` (host signals forwarded to the program).
//! Neighbours: `offload-abi` (the contract), `offload-host` (serves offloaded syscalls),
//! `lwk-devices` (the port bus); the LWK image comes from `guest-lwk` via build.rs.

mod boot;
mod check;
mod cli;
#[cfg(test)]
mod compat;
mod config;
mod fpu;
mod job;
mod logging;
mod memory;
mod offload;
mod program;
mod signals;
mod stats;
mod vcpu;

use clap::Parser;
use std::error::Error;
use std::process::ExitCode;

/// Status when the LWK or the VM failed after the program started.
const STATUS_LWK_FAILED: u8 = 123;

fn print_error(e: &dyn Error) {
    let mut msg = format!("lwk-vmm: {e}");
    let mut source = e.source();
    while let Some(s) = source {
        msg.push_str(&format!(": {s}"));
        source = s.source();
    }
    eprintln!("{msg}");
}

/// Ends this process the way the program ended: killed by `signal` (so a parent sees
/// WIFSIGNALED, and a shell prints 128+N), falling back to exit status 128+N.
fn die_by_signal(signal: i32) -> ExitCode {
    // SAFETY: resetting a signal to its default action, unblocking it and raising it are
    // async-signal-safe libc calls on valid signal numbers (1..=64, checked by the caller);
    // RLIMIT_CORE 0 keeps the VMM from dumping a core that says nothing about the program.
    unsafe {
        let no_core = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        libc::setrlimit(libc::RLIMIT_CORE, &no_core);
        libc::signal(signal, libc::SIG_DFL);
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        libc::sigaddset(&mut set, signal);
        libc::sigprocmask(libc::SIG_UNBLOCK, &set, std::ptr::null_mut());
        libc::raise(signal);
    }
    ExitCode::from((128 + signal).clamp(0, 255) as u8)
}

fn run(args: cli::RunArgs) -> ExitCode {
    // Before any thread exists: every thread inherits the mask (see `signals`).
    signals::block_forwarded();
    let verbose = args.verbose;
    let quiet = args.quiet;
    logging::init(verbose, quiet);
    let opts = match config::resolve(args) {
        Ok(o) => o,
        Err(e) => {
            print_error(&e);
            return ExitCode::from(125);
        }
    };
    if opts.verbose != verbose || opts.quiet != quiet {
        // The config file set the verbosity: the first init won, so this only matters for
        // messages after this point, which is all of them.
        logging::init(opts.verbose, opts.quiet);
    }
    let (outcome, stats) = match job::run(&opts) {
        Ok(r) => r,
        Err(e) => {
            print_error(&e);
            return ExitCode::from(e.exit_status() as u8);
        }
    };
    if opts.stats {
        eprint!("{}", stats.summary());
    }
    if let Some(path) = &opts.stats_json {
        let written = serde_json::to_vec_pretty(&stats)
            .map_err(std::io::Error::other)
            .and_then(|json| std::fs::write(path, json));
        if let Err(e) = written {
            tracing::error!("cannot write statistics to {}: {e}", path.display());
        }
    }
    match outcome {
        job::Outcome::Exited(code) => ExitCode::from(code as u8),
        job::Outcome::Signaled(sig) => die_by_signal(sig),
        job::Outcome::LwkFailed(msg) => {
            tracing::error!("{msg}");
            ExitCode::from(STATUS_LWK_FAILED)
        }
    }
}

fn main() -> ExitCode {
    let cli = match cli::Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 125 } else { 0 });
        }
    };
    match cli.command {
        cli::Command::Run(args) => run(*args),
        cli::Command::Check => {
            if check::run() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
    }
}
