//! Job configuration files (`--config FILE`, TOML) and their merge with the command line.
//!
//! Every `run` option has a key of the same name (with `_` for `-`); the command line overrides
//! the file, the file overrides the defaults. Unknown keys and bad values are errors that name
//! the file, the line and the key. configs/*.toml are commented examples that work as-is.

use crate::cli::{self, RunArgs};
use crate::memory::HugepagePolicy;
use serde::Deserialize;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

/// Default guest memory.
pub const DEFAULT_MEMORY: u64 = 1 << 30;

/// Errors reading a configuration.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file cannot be read.
    #[error("cannot read the config file {path}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// TOML syntax, an unknown key or a value of the wrong type.
    #[error("{path}:{line}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// What is wrong (names the key).
        message: String,
    },
    /// A value of the right type that is not acceptable.
    #[error("{origin}: {key}: {message}")]
    Value {
        /// The file and line, or "command line".
        origin: String,
        /// The key or option.
        key: &'static str,
        /// What is wrong.
        message: String,
    },
}

/// `memory` may be a size string ("4G") or a number of bytes.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum SizeValue {
    Text(String),
    Bytes(u64),
}

/// `trace` is true/false or a file name.
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
enum TraceValue {
    On(bool),
    File(PathBuf),
}

/// The keys of a config file.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    cpus: Option<u32>,
    cpu_list: Option<String>,
    memory: Option<SizeValue>,
    hugepages: Option<String>,
    prefault: Option<bool>,
    oversubscribe: Option<String>,
    timeslice_ms: Option<u64>,
    root: Option<PathBuf>,
    cwd: Option<PathBuf>,
    env: Option<BTreeMap<String, String>>,
    clear_env: Option<bool>,
    trace: Option<TraceValue>,
    stats: Option<bool>,
    stats_json: Option<PathBuf>,
    verbose: Option<u8>,
    quiet: Option<bool>,
}

/// Where `--trace` output goes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TraceTarget {
    /// Standard error.
    Stderr,
    /// A file (created or truncated).
    File(PathBuf),
}

/// The resolved options of one job.
#[derive(Debug, Clone)]
pub struct RunOptions {
    /// vCPUs.
    pub cpus: u32,
    /// Host cores to pin the vCPUs to (empty: choose).
    pub cpu_list: Vec<usize>,
    /// Guest RAM in bytes.
    pub memory: u64,
    /// Host backing policy of guest RAM.
    pub hugepages: HugepagePolicy,
    /// Map memory when granted (no demand paging).
    pub prefault: bool,
    /// More threads than vCPUs.
    pub oversubscribe: Oversubscribe,
    /// Time slice in milliseconds (with [`Oversubscribe::Timeslice`]).
    pub timeslice_ms: u64,
    /// The job root.
    pub root: PathBuf,
    /// The working directory inside the root.
    pub cwd: Option<PathBuf>,
    /// `KEY=VALUE` additions to the environment, in order (later wins).
    pub env: Vec<OsString>,
    /// Start from an empty environment.
    pub clear_env: bool,
    /// Syscall trace.
    pub trace: Option<TraceTarget>,
    /// Human summary at exit.
    pub stats: bool,
    /// JSON statistics file.
    pub stats_json: Option<PathBuf>,
    /// Verbosity.
    pub verbose: u8,
    /// Only errors from lwk-vmm itself.
    pub quiet: bool,
    /// The program.
    pub program: OsString,
    /// Its arguments.
    pub args: Vec<OsString>,
}

fn line_of(text: &str, offset: usize) -> usize {
    text.get(..offset.min(text.len()))
        .map_or(1, |t| t.matches('\n').count() + 1)
}

/// Finds the line where `key = ` is set (for value errors found after parsing).
fn key_line(text: &str, key: &str) -> usize {
    text.lines()
        .position(|l| {
            let l = l.trim_start();
            l.strip_prefix(key)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
        .map_or(1, |i| i + 1)
}

/// Parses a CPU list such as `0-3,8,10-11`.
pub fn parse_cpu_list(s: &str) -> Result<Vec<usize>, String> {
    let mut out = Vec::new();
    for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        let bad = || format!("'{s}' is not a CPU list (example: 0-3,8)");
        match part.split_once('-') {
            Some((a, b)) => {
                let a: usize = a.trim().parse().map_err(|_| bad())?;
                let b: usize = b.trim().parse().map_err(|_| bad())?;
                if b < a || b >= 4096 {
                    return Err(bad());
                }
                out.extend(a..=b);
            }
            None => out.push(part.parse().map_err(|_| bad())?),
        }
    }
    let mut seen = out.clone();
    seen.sort_unstable();
    seen.dedup();
    if seen.len() != out.len() {
        return Err(format!("'{s}' names a CPU twice"));
    }
    Ok(out)
}

/// What happens when a program wants more threads than it has vCPUs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Oversubscribe {
    /// clone fails with EAGAIN (McKernel's policy): each thread owns a vCPU.
    Refuse,
    /// Threads share vCPUs round-robin, preempted by the vCPU's timer (the default: shells,
    /// launchers and threaded runtimes work out of the box; a vCPU with one thread still has
    /// no tick, so a job with one thread per vCPU runs as under `Refuse`).
    #[default]
    Timeslice,
}

/// Default time slice when vCPUs are shared.
pub const DEFAULT_TIMESLICE_MS: u64 = 10;

fn parse_oversubscribe(s: &str) -> Result<Oversubscribe, String> {
    use clap::ValueEnum;
    Oversubscribe::from_str(s, false).map_err(|_| format!("'{s}' is not one of refuse, timeslice"))
}

fn parse_hugepages(s: &str) -> Result<HugepagePolicy, String> {
    use clap::ValueEnum;
    HugepagePolicy::from_str(s, true)
        .map_err(|_| format!("'{s}' is not one of auto, 1G, 2M, thp, off"))
}

/// Reads a config file.
fn load(path: &Path) -> Result<(FileConfig, String), ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let parsed: FileConfig = toml::from_str(&text).map_err(|e| ConfigError::Parse {
        path: path.to_path_buf(),
        line: e.span().map_or(1, |s| line_of(&text, s.start)),
        message: e.message().to_string(),
    })?;
    Ok((parsed, text))
}

/// Merges the command line over the config file (if any) over the defaults.
pub fn resolve(args: RunArgs) -> Result<RunOptions, ConfigError> {
    let (file, text, path) = match &args.config {
        Some(path) => {
            let (f, t) = load(path)?;
            (f, t, path.display().to_string())
        }
        None => (FileConfig::default(), String::new(), String::new()),
    };
    let at = |key: &str| format!("{path}:{}", key_line(&text, key));
    let value_err = |key: &'static str, message: String| ConfigError::Value {
        origin: at(key),
        key,
        message,
    };

    let memory = match (args.memory, &file.memory) {
        (Some(m), _) => m,
        (None, Some(SizeValue::Text(s))) => {
            cli::parse_size(s).map_err(|m| value_err("memory", m))?
        }
        (None, Some(SizeValue::Bytes(b))) => {
            cli::parse_size(&b.to_string()).map_err(|m| value_err("memory", m))?
        }
        (None, None) => DEFAULT_MEMORY,
    };
    let hugepages = match (args.hugepages, &file.hugepages) {
        (Some(h), _) => h,
        (None, Some(s)) => parse_hugepages(s).map_err(|m| value_err("hugepages", m))?,
        (None, None) => HugepagePolicy::Auto,
    };
    let oversubscribe = match (args.oversubscribe, &file.oversubscribe) {
        (Some(o), _) => o,
        (None, Some(s)) => parse_oversubscribe(s).map_err(|m| value_err("oversubscribe", m))?,
        (None, None) => Oversubscribe::default(),
    };
    let timeslice_ms = args
        .timeslice_ms
        .or(file.timeslice_ms)
        .unwrap_or(DEFAULT_TIMESLICE_MS);
    if !(1..=1000).contains(&timeslice_ms) {
        return Err(ConfigError::Value {
            origin: if args.timeslice_ms.is_some() {
                "command line".into()
            } else {
                at("timeslice_ms")
            },
            key: "timeslice_ms",
            message: format!("{timeslice_ms} is not between 1 and 1000"),
        });
    }
    let cpu_list = match (&args.cpu_list, &file.cpu_list) {
        (Some(v), _) => v.0.clone(),
        (None, Some(s)) => parse_cpu_list(s).map_err(|m| value_err("cpu_list", m))?,
        (None, None) => Vec::new(),
    };
    let cpus = args.cpus.or(file.cpus).unwrap_or(if cpu_list.is_empty() {
        1
    } else {
        cpu_list.len() as u32
    });
    if cpus == 0 {
        let origin = if args.cpus.is_some() {
            "command line".into()
        } else {
            at("cpus")
        };
        return Err(ConfigError::Value {
            origin,
            key: "cpus",
            message: "must be at least 1".into(),
        });
    }
    if !cpu_list.is_empty() && cpu_list.len() != cpus as usize {
        return Err(ConfigError::Value {
            origin: if args.cpu_list.is_some() {
                "command line".into()
            } else {
                at("cpu_list")
            },
            key: "cpu_list",
            message: format!("names {} cores for {cpus} vCPUs", cpu_list.len()),
        });
    }
    let prefault = if args.no_prefault {
        false
    } else if args.prefault {
        true
    } else {
        file.prefault.unwrap_or(true)
    };
    // Environment: file entries first (sorted by key), then the command line's (which win).
    let mut env: Vec<OsString> = Vec::new();
    for (k, v) in file.env.iter().flatten() {
        if k.is_empty() || k.contains('=') {
            return Err(value_err(
                "env",
                format!("'{k}' is not an environment variable name"),
            ));
        }
        env.push(format!("{k}={v}").into());
    }
    env.extend(args.env.iter().cloned());
    let trace = match (&args.trace, &file.trace) {
        (Some(None), _) => Some(TraceTarget::Stderr),
        (Some(Some(f)), _) => Some(TraceTarget::File(f.clone())),
        (None, Some(TraceValue::On(true))) => Some(TraceTarget::Stderr),
        (None, Some(TraceValue::File(f))) => Some(TraceTarget::File(f.clone())),
        (None, Some(TraceValue::On(false)) | None) => None,
    };
    let verbose = if args.verbose > 0 {
        args.verbose
    } else {
        file.verbose.unwrap_or(0)
    };
    let mut command = args.command.into_iter();
    Ok(RunOptions {
        cpus,
        cpu_list,
        memory,
        hugepages,
        prefault,
        oversubscribe,
        timeslice_ms,
        root: args
            .root
            .or(file.root)
            .unwrap_or_else(|| PathBuf::from("/")),
        cwd: args.cwd.or(file.cwd),
        env,
        clear_env: args.clear_env || file.clear_env.unwrap_or(false),
        trace,
        stats: args.stats || file.stats.unwrap_or(false),
        stats_json: args.stats_json.or(file.stats_json),
        verbose,
        quiet: args.quiet || (verbose == 0 && file.quiet.unwrap_or(false)),
        program: command.next().unwrap_or_default(),
        args: command.collect(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    fn args(argv: &[&str]) -> RunArgs {
        let mut full = vec!["lwk-vmm", "run"];
        full.extend_from_slice(argv);
        match cli::Cli::try_parse_from(full).unwrap().command {
            cli::Command::Run(r) => *r,
            other => panic!("not run: {other:?}"),
        }
    }

    fn write_config(name: &str, text: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("lwk-vmm-config-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let p = dir.join(name);
        std::fs::write(&p, text).unwrap();
        p
    }

    #[test]
    fn defaults() {
        let o = resolve(args(&["./a.out", "x"])).unwrap();
        assert_eq!(o.memory, DEFAULT_MEMORY);
        assert_eq!(o.hugepages, HugepagePolicy::Auto);
        assert!(o.prefault);
        assert_eq!(o.cpus, 1);
        assert_eq!(o.root, PathBuf::from("/"));
        assert_eq!(o.trace, None);
        assert_eq!(o.program, "./a.out");
        assert_eq!(o.args, ["x"]);
    }

    #[test]
    fn command_line_overrides_file() {
        let p = write_config(
            "merge.toml",
            "memory = \"2G\"\nhugepages = \"off\"\nprefault = false\nstats = true\ntrace = \"t.log\"\n[env]\nA = \"from-file\"\nB = \"b\"\n",
        );
        let o = resolve(args(&[
            "--config",
            p.to_str().unwrap(),
            "--memory",
            "512M",
            "--env",
            "A=cli",
            "./p",
        ]))
        .unwrap();
        assert_eq!(o.memory, 512 << 20);
        assert_eq!(o.hugepages, HugepagePolicy::Off);
        assert!(!o.prefault);
        assert!(o.stats);
        assert_eq!(o.trace, Some(TraceTarget::File("t.log".into())));
        assert_eq!(o.env, ["A=from-file", "B=b", "A=cli"]);
        let o = resolve(args(&[
            "--config",
            p.to_str().unwrap(),
            "--prefault",
            "--trace",
            "./p",
        ]))
        .unwrap();
        assert!(o.prefault);
        assert_eq!(o.trace, Some(TraceTarget::Stderr));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_file_line_and_key() {
        let p = write_config("bad-key.toml", "memory = \"1G\"\n\nmemroy = \"2G\"\n");
        let e = resolve(args(&["--config", p.to_str().unwrap(), "./p"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad-key.toml:3"), "{e}");
        assert!(e.contains("memroy"), "{e}");
        let p = write_config("bad-type.toml", "cpus = \"many\"\n");
        let e = resolve(args(&["--config", p.to_str().unwrap(), "./p"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad-type.toml:1"), "{e}");
        let p = write_config("bad-value.toml", "# comment\nhugepages = \"4M\"\n");
        let e = resolve(args(&["--config", p.to_str().unwrap(), "./p"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("bad-value.toml:2") && e.contains("hugepages"),
            "{e}"
        );
        let p = write_config("bad-size.toml", "memory = \"lots\"\n");
        let e = resolve(args(&["--config", p.to_str().unwrap(), "./p"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("bad-size.toml:1") && e.contains("memory"), "{e}");
        let e = resolve(args(&["--config", "/nonexistent.toml", "./p"]))
            .unwrap_err()
            .to_string();
        assert!(e.contains("/nonexistent.toml"), "{e}");
    }

    #[test]
    fn cpu_lists() {
        assert_eq!(parse_cpu_list("0-3,8"), Ok(vec![0, 1, 2, 3, 8]));
        assert!(parse_cpu_list("3-1").is_err());
        assert!(parse_cpu_list("1,1").is_err());
        assert!(parse_cpu_list("x").is_err());
        let o = resolve(args(&["--cpu-list", "1", "./p"])).unwrap();
        assert_eq!((o.cpus, o.cpu_list), (1, vec![1]));
        assert!(resolve(args(&["--cpus", "2", "--cpu-list", "1", "./p"])).is_err());
    }

    #[test]
    fn oversubscription_policy_from_file_and_command_line() {
        let o = resolve(args(&["./p"])).unwrap();
        assert_eq!(
            (o.oversubscribe, o.timeslice_ms),
            (Oversubscribe::Timeslice, DEFAULT_TIMESLICE_MS)
        );
        let p = write_config(
            "oversub.toml",
            "oversubscribe = \"timeslice\"\ntimeslice_ms = 3\n",
        );
        let o = resolve(args(&["--config", p.to_str().unwrap(), "./p"])).unwrap();
        assert_eq!(
            (o.oversubscribe, o.timeslice_ms),
            (Oversubscribe::Timeslice, 3)
        );
        let o = resolve(args(&[
            "--config",
            p.to_str().unwrap(),
            "--oversubscribe",
            "refuse",
            "--timeslice-ms",
            "7",
            "./p",
        ]))
        .unwrap();
        assert_eq!(
            (o.oversubscribe, o.timeslice_ms),
            (Oversubscribe::Refuse, 7)
        );
        let p = write_config("oversub-bad.toml", "timeslice_ms = 5000\n");
        let e = resolve(args(&["--config", p.to_str().unwrap(), "./p"]))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("oversub-bad.toml:1") && e.contains("timeslice_ms"),
            "{e}"
        );
    }

    #[test]
    fn shipped_configs_parse() {
        for name in ["default.toml", "hpc.toml", "laptop.toml"] {
            let p = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../configs")
                .join(name);
            let o = resolve(args(&["--config", p.to_str().unwrap(), "./p"]));
            assert!(o.is_ok(), "{name}: {:?}", o.err());
        }
    }
}
