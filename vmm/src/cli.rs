//! The command line.

use clap::{Args, Parser, Subcommand};
use std::ffi::OsString;
use std::path::PathBuf;

/// Run an unmodified Linux program on a light-weight kernel inside a KVM virtual machine.
#[derive(Debug, Parser)]
#[command(name = "lwk-vmm", version, about, long_about = None)]
pub struct Cli {
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run PROGRAM with ARGS on the LWK; lwk-vmm exits with the program's status.
    #[command(
        after_help = "Examples:\n  lwk-vmm run ./a.out\n  lwk-vmm run --memory 4G --stats-json stats.json ./solver input.dat\n\nExit status: the program's own; 128+N when it was killed by signal N; 125 when lwk-vmm could not start the job; 126 when the program cannot be executed; 127 when it was not found; 123 when the LWK or the VM failed while the program ran."
    )]
    Run(RunArgs),
}

/// Options of `lwk-vmm run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Guest memory (e.g. 512M, 4G); programs get all of it but the LWK's 16 MiB and the
    /// initial stack (RLIMIT_STACK).
    #[arg(long, default_value = "1G", value_parser = parse_size)]
    pub memory: u64,
    /// Map program memory on first touch (demand paging) instead of when brk/mmap grant it.
    #[arg(long)]
    pub no_prefault: bool,
    /// Host backing of guest memory: auto (1G, else 2M hugetlb pages, else THP, else 4K), 1G,
    /// 2M, thp or off.
    #[arg(long, value_enum, default_value = "auto", value_name = "POLICY")]
    pub hugepages: crate::memory::HugepagePolicy,
    /// Write job statistics as JSON to FILE at exit.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Say more (memory backing, core placement, LWK messages).
    #[arg(short, long, action = clap::ArgAction::Count)]
    pub verbose: u8,
    /// Resolve every path of the program inside DIR.
    #[arg(long, default_value = "/", value_name = "DIR")]
    pub root: PathBuf,
    /// Working directory inside the root (default: the current directory if inside the root,
    /// else /).
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set KEY=VALUE in the program's environment (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<OsString>,
    /// Start the program with an empty environment (then add --env entries).
    #[arg(long)]
    pub clear_env: bool,
    /// PROGRAM (a path, or a name looked up in PATH) and its ARGS, passed untouched: options
    /// of lwk-vmm end at PROGRAM.
    #[arg(
        value_name = "PROGRAM [ARGS]...",
        required = true,
        num_args = 1..,
        trailing_var_arg = true,
        allow_hyphen_values = true
    )]
    pub command: Vec<OsString>,
}

/// Parses sizes like `512M`, `4G`, `1048576`; the result is a multiple of 2 MiB.
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (digits, unit) = match s.find(|c: char| !c.is_ascii_digit()) {
        Some(i) => s.split_at(i),
        None => (s, ""),
    };
    let n: u64 = digits
        .parse()
        .map_err(|_| format!("'{s}' is not a size (examples: 512M, 4G)"))?;
    let mult: u64 = match unit.to_ascii_uppercase().as_str() {
        "" | "B" => 1,
        "K" | "KB" | "KIB" => 1 << 10,
        "M" | "MB" | "MIB" => 1 << 20,
        "G" | "GB" | "GIB" => 1 << 30,
        "T" | "TB" | "TIB" => 1 << 40,
        _ => return Err(format!("unknown size unit '{unit}' (use K, M, G or T)")),
    };
    let bytes = n
        .checked_mul(mult)
        .ok_or_else(|| format!("'{s}' is too large"))?;
    if bytes < 64 << 20 {
        return Err(format!("'{s}' is too small: the LWK needs at least 64M"));
    }
    Ok(bytes.next_multiple_of(2 << 20))
}

fn parse_env(s: &str) -> Result<OsString, String> {
    match s.split_once('=') {
        Some((k, _)) if !k.is_empty() => Ok(s.into()),
        _ => Err(format!("'{s}' is not KEY=VALUE")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("1G"), Ok(1 << 30));
        assert_eq!(parse_size("512m"), Ok(512 << 20));
        assert_eq!(parse_size("100M"), Ok(100 << 20));
        assert_eq!(parse_size("65M"), Ok(66 << 20));
        assert!(parse_size("1M").is_err());
        assert!(parse_size("lots").is_err());
        assert!(parse_size("5X").is_err());
        assert!(parse_size("99999999999T").is_err());
    }

    #[test]
    fn program_is_required() {
        assert!(Cli::try_parse_from(["lwk-vmm", "run"]).is_err());
        assert!(Cli::try_parse_from(["lwk-vmm", "run", "--memory", "2G"]).is_err());
    }

    #[test]
    fn program_flags_pass_through() {
        let cli = Cli::try_parse_from([
            "lwk-vmm", "run", "--memory", "2G", "./prog", "--memory", "-v", "x",
        ])
        .unwrap();
        let Command::Run(run) = cli.command;
        assert_eq!(run.memory, 2 << 30);
        assert_eq!(run.command, ["./prog", "--memory", "-v", "x"]);
        assert_eq!(run.verbose, 0);
    }
}
