//! Dynamically linked and position-independent programs (issue #9's loader part): a PIE with
//! PT_INTERP (ld-linux loaded by the LWK from inside the job root), a static PIE, dlopen, and
//! programs nobody here wrote (the host's /bin/ls, /usr/bin/sort, /usr/bin/python3 with a C
//! extension module) — each natively and under lwk-vmm, stdout and exit status compared.

mod common;

use common::*;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Builds `tests/dynamic/<name>.c` with `gcc <flags>` into the test's temp directory.
fn build(name: &str, out: &str, flags: &[&str]) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/dynamic")
        .join(format!("{name}.c"));
    let bin = Path::new(env!("CARGO_TARGET_TMPDIR")).join(out);
    let o = Command::new("gcc")
        .args(flags)
        .args(["-O2", "-Wall", "-Werror", "-o"])
        .arg(&bin)
        .arg(&src)
        .output()
        .expect("gcc runs (installed by .ci/run)");
    assert!(
        o.status.success(),
        "gcc {flags:?} {name}: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    bin
}

/// Runs `prog args` natively and under lwk-vmm in `cwd`; returns a failure description.
/// `must_succeed`: the native run must exit 0 (so that two identical failures do not pass).
fn compare(prog: &Path, args: &[&str], cwd: &Path, must_succeed: bool) -> Option<String> {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let n = run(Command::new(prog).args(&args).current_dir(cwd));
    if must_succeed && !n.status.success() {
        return Some(format!(
            "{} {args:?} fails natively: {}",
            prog.display(),
            String::from_utf8_lossy(&n.stderr)
        ));
    }
    let l = run(Command::new(LWK_VMM)
        .arg("run")
        .arg(prog)
        .args(&args)
        .current_dir(cwd));
    if n.stdout == l.stdout && status_of(&n) == status_of(&l) {
        eprintln!("PASS {} {args:?} ({})", prog.display(), status_of(&l));
        None
    } else {
        Some(format!(
            "{} {args:?}: native {} / lwk-vmm {}\n--- native\n{}--- lwk-vmm\n{}--- stderr\n{}",
            prog.display(),
            status_of(&n),
            status_of(&l),
            String::from_utf8_lossy(&n.stdout),
            String::from_utf8_lossy(&l.stdout),
            String::from_utf8_lossy(&l.stderr)
        ))
    }
}

fn check_all(cases: &[(PathBuf, Vec<&str>)], cwd: &Path, must_succeed: bool) {
    let failures: Vec<String> = cases
        .iter()
        .filter_map(|(p, a)| compare(p, a, cwd, must_succeed))
        .collect();
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn own_dynamic_and_pie_programs_match_native() {
    if !kvm_usable() {
        return;
    }
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    check_all(
        &[
            (
                build("hello", "hello-dynamic", &["-pie", "-fPIE"]),
                vec!["a", "b c"],
            ),
            (build("hello", "hello-nopie", &["-no-pie"]), vec!["x"]),
            (
                build("hello", "hello-static-pie", &["-static-pie", "-fPIE"]),
                vec!["y"],
            ),
            (build("dlopen", "dlopen-dynamic", &[]), vec![]),
        ],
        tmp,
        false,
    );
}

#[test]
fn host_programs_match_native() {
    if !kvm_usable() {
        return;
    }
    // A fixture directory with known contents (no times or sizes that differ between runs).
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dynamic-fixture");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(dir.join("sub/deeper")).unwrap();
    for (name, text) in [
        ("b.txt", "pear\napple\nfig\n"),
        ("a.txt", "3\n1\n2\n"),
        ("sub/c", ""),
    ] {
        std::fs::write(dir.join(name), text).unwrap();
    }
    let mut cases: Vec<(PathBuf, Vec<&str>)> = vec![
        ("/bin/ls".into(), vec![]),
        ("/bin/ls".into(), vec!["-1", "-R", "."]),
        // -l: owners through NSS (dynamically loaded modules), ACL checks through getxattr.
        ("/bin/ls".into(), vec!["-l", "a.txt", "b.txt", "sub"]),
        ("/usr/bin/sort".into(), vec!["b.txt"]),
        ("/usr/bin/sort".into(), vec!["-n", "-r", "a.txt"]),
    ];
    let python = Path::new("/usr/bin/python3");
    if python.exists() {
        // os and json (json's speedups are the C extension module _json, loaded with dlopen).
        cases.push((
            python.into(),
            vec![
                "-c",
                "import os, json, _json; print(json.dumps({'cwd': os.path.basename(os.getcwd()), \
                 'files': sorted(os.listdir('.')), 'ext': _json.__file__.endswith('.so')}))",
            ],
        ));
    } else {
        eprintln!("SKIP python3: /usr/bin/python3 is not installed");
    }
    check_all(&cases, &dir, true);
}
