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
    #[command(after_help = RUN_HELP, override_usage = "lwk-vmm run [OPTIONS] PROGRAM [ARGS]...")]
    Run(Box<RunArgs>),
    /// Check whether jobs can run on this host and what they would get.
    Check,
}

const RUN_HELP: &str = "Examples:
  lwk-vmm run ./a.out
  lwk-vmm run --memory 4G --hugepages 2M --stats ./solver input.dat
  lwk-vmm run --config configs/hpc.toml --trace=trace.log ./a.out -n 10
  mpiexec -n 4 lwk-vmm run ./mpi-app

Exit status: the program's own; 128+N when it was killed by signal N (lwk-vmm re-raises the
signal); 125 when lwk-vmm could not start the job; 126 when the program cannot be executed;
127 when it was not found; 123 when the LWK or the VM failed while the program ran.";

/// Options of `lwk-vmm run`. Options that a config file can also set are `Option`s here so
/// that the merge knows whether the command line gave them.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// Read job options from a TOML file (command-line options override it).
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Number of vCPUs, each pinned to its own host core [default: 1].
    #[arg(long, value_name = "N")]
    pub cpus: Option<u32>,
    /// Host cores for the vCPUs, e.g. 2-5,8 (one per vCPU) [default: isolated cores, else the
    /// first allowed ones].
    #[arg(long, value_name = "LIST", value_parser = parse_cpu_list_arg)]
    pub cpu_list: Option<CpuList>,
    /// Guest memory, e.g. 512M, 4G; programs get all of it but the LWK's 16 MiB and the page
    /// tables [default: 1G].
    #[arg(long, value_parser = parse_size, value_name = "SIZE")]
    pub memory: Option<u64>,
    /// Host backing of guest memory: auto (1G, else 2M hugetlb pages, else THP, else 4K), 1G,
    /// 2M, thp or off [default: auto].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub hugepages: Option<crate::memory::HugepagePolicy>,
    /// Map program memory when it is granted, so the steady state takes no page faults
    /// [default].
    #[arg(long, overrides_with = "no_prefault")]
    pub prefault: bool,
    /// Map program memory on first touch instead (demand paging).
    #[arg(long, overrides_with = "prefault")]
    pub no_prefault: bool,
    /// More threads than vCPUs: timeslice (threads share vCPUs, preempted by the vCPU timer;
    /// a vCPU with one thread has no tick) or refuse (clone and fork fail with EAGAIN, each
    /// thread owns a vCPU, as on McKernel) [default: timeslice].
    #[arg(long, value_enum, value_name = "POLICY")]
    pub oversubscribe: Option<crate::config::Oversubscribe>,
    /// Time slice with --oversubscribe timeslice, 1 to 1000 [default: 10].
    #[arg(long, value_name = "MS")]
    pub timeslice_ms: Option<u64>,
    /// Resolve every path of the program inside DIR [default: /].
    #[arg(long, value_name = "DIR")]
    pub root: Option<PathBuf>,
    /// Working directory inside the root [default: the current directory if inside the root,
    /// else /].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,
    /// Set KEY=VALUE in the program's environment (repeatable).
    #[arg(long = "env", value_name = "KEY=VALUE", value_parser = parse_env)]
    pub env: Vec<OsString>,
    /// Start the program with an empty environment (then add --env entries).
    #[arg(long)]
    pub clear_env: bool,
    /// Print every syscall like strace, to stderr or to FILE.
    #[arg(long, value_name = "FILE", num_args = 0..=1, require_equals = true)]
    pub trace: Option<Option<PathBuf>>,
    /// Print a summary at exit (syscalls, VM exits, memory, cores).
    #[arg(long)]
    pub stats: bool,
    /// Write job statistics as JSON to FILE at exit.
    #[arg(long, value_name = "FILE")]
    pub stats_json: Option<PathBuf>,
    /// Say more (memory backing, core placement, timing, LWK messages); repeat for more.
    #[arg(short, long, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    pub verbose: u8,
    /// Print nothing but errors from lwk-vmm itself.
    #[arg(short, long)]
    pub quiet: bool,
    /// PROGRAM (a path, or a name looked up in PATH) and its ARGS, passed untouched: options
    /// of lwk-vmm end at PROGRAM.
    #[arg(
        value_name = "PROGRAM",
        required = true,
        num_args = 1..,
        trailing_var_arg = true
    )]
    pub command: Vec<OsString>,
}

/// A parsed `--cpu-list` (a newtype so clap treats it as one value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CpuList(pub Vec<usize>);

fn parse_cpu_list_arg(s: &str) -> Result<CpuList, String> {
    crate::config::parse_cpu_list(s).map(CpuList)
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
        let Command::Run(run) = cli.command else {
            panic!("not run")
        };
        assert_eq!(run.memory, Some(2 << 30));
        assert_eq!(run.command, ["./prog", "--memory", "-v", "x"]);
        assert_eq!(run.verbose, 0);
    }
}

#[cfg(test)]
mod doc_tests {
    use super::Cli;
    use clap::CommandFactory;

    /// docs/CLI.md is the `--help` text of every command; regenerate with
    /// `LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm cli_reference`.
    fn render() -> String {
        let mut cmd = Cli::command().term_width(100);
        let mut out = String::from(
            "# Command-line reference\n\nGenerated from `lwk-vmm --help` by a test in `vmm/src/cli.rs` \
             (`LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm cli_reference` regenerates it; the test fails when it \
             is stale). Every `run` option but `--config` also has a config-file key of the same name (`-` becomes \
             `_`; `--prefault`/`--no-prefault` is `prefault = true|false`); see configs/default.toml.\n\n## lwk-vmm\n\n```text\n",
        );
        out.push_str(&cmd.render_long_help().to_string());
        out.push_str("```\n");
        for sub in ["run", "check"] {
            let sc = cmd.find_subcommand_mut(sub).expect("subcommand exists");
            let mut sc = sc
                .clone()
                .term_width(100)
                .bin_name(format!("lwk-vmm {sub}"));
            out.push_str(&format!(
                "\n## lwk-vmm {sub}\n\n```text\n{}```\n",
                sc.render_long_help()
            ));
        }
        out
    }

    #[test]
    fn cli_reference_is_current() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/CLI.md");
        let want = render();
        if std::env::var_os("LWK_UPDATE_DOCS").is_some() {
            std::fs::write(path, &want).unwrap();
        }
        let have = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            have == want,
            "docs/CLI.md is stale: run LWK_UPDATE_DOCS=1 cargo test -p lwk-vmm cli_reference"
        );
    }
}
