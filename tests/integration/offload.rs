//! The offload bridge against programs nobody here wrote (Debian's busybox-static) and
//! against escape attempts from `--root`.
//!
//! - Each busybox applet runs natively and under `lwk-vmm run` in two fresh directories with
//!   identical content (same names, bytes, modes and mtimes); stdout, the exit status and
//!   the resulting directory trees (names, kinds, modes, sizes, contents, link targets; not
//!   times, which an applet sets to "now") must be equal.
//! - Escapes: with `--root` a temporary directory, `..` chains, absolute and relative
//!   symlinks pointing outside, /proc links and writes through them never reach a marker file
//!   outside the root.
//! - Inherited fds beyond 0-2 are seen the same natively and under lwk-vmm.
//!
//! Busybox applets that need fork/exec (sh pipelines, xargs running commands, find -exec),
//! signals (timeout, sleep), or group lookups (id: getgroups is not supported yet) are not
//! used here.

mod common;

use common::*;
use std::collections::BTreeMap;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

const BUSYBOX: &str = "/bin/busybox";

/// Whether busybox-static is installed (`.ci/run` installs it); a loud skip otherwise, a
/// failure with `LWK_VMM_REQUIRE_KVM=1`.
fn busybox_present() -> bool {
    if Path::new(BUSYBOX).is_file() {
        return true;
    }
    if std::env::var("LWK_VMM_REQUIRE_KVM").as_deref() == Ok("1") {
        panic!("{BUSYBOX} is missing: install busybox-static (.ci/run does)");
    }
    eprintln!("SKIP: {BUSYBOX} is missing (apt-get install busybox-static)");
    false
}

fn scratch(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("offload")
        .join(name);
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A fixed point in time for every fixture file (so that ls -l, tar and gzip headers match).
fn fixed_time() -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000)
}

fn set_mtime(path: &Path) {
    let f = std::fs::File::options()
        .read(true)
        .open(path)
        .or_else(|_| std::fs::File::open(path))
        .unwrap();
    f.set_modified(fixed_time()).unwrap();
}

/// The fixture every applet starts from.
fn fixture(dir: &Path) {
    let w = |p: &str, s: &str, mode: u32| {
        let path = dir.join(p);
        std::fs::write(&path, s).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        set_mtime(&path);
    };
    std::fs::create_dir_all(dir.join("d/e")).unwrap();
    w("f.txt", "banana 3\napple 1\ncherry 2\napple 1\n", 0o644);
    w("d/one", "one\n", 0o600);
    w("d/e/two", &"two lines\n".repeat(500), 0o640);
    w("script", "#!/bin/sh\necho hi\n", 0o755);
    std::os::unix::fs::symlink("f.txt", dir.join("l")).unwrap();
    std::os::unix::fs::symlink("d/e", dir.join("dl")).unwrap();
    std::fs::write(dir.join("archive.tar"), archive()).unwrap();
    set_mtime(&dir.join("archive.tar"));
    for d in ["d/e", "d", "."] {
        set_mtime(&dir.join(d));
    }
}

/// A tar archive (made once by the native busybox) for the extraction applets.
fn archive() -> &'static [u8] {
    static TAR: std::sync::OnceLock<Vec<u8>> = std::sync::OnceLock::new();
    TAR.get_or_init(|| {
        let src = scratch("archive-src");
        std::fs::create_dir_all(src.join("pkg/bin")).unwrap();
        std::fs::write(src.join("pkg/bin/tool"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(
            src.join("pkg/bin/tool"),
            std::fs::Permissions::from_mode(0o755),
        )
        .unwrap();
        std::fs::write(src.join("pkg/README"), "read me\n".repeat(100)).unwrap();
        std::os::unix::fs::symlink("bin/tool", src.join("pkg/link")).unwrap();
        for p in ["pkg/bin/tool", "pkg/README", "pkg/bin", "pkg"] {
            set_mtime(&src.join(p));
        }
        let o = busybox_in(&src, &["tar", "cf", "-", "pkg"], false);
        assert!(o.status.success());
        o.stdout
    })
}

/// Everything about a tree except times.
fn tree(dir: &Path) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let e = e.unwrap();
            let p = e.path();
            let rel = p.strip_prefix(dir).unwrap().to_string_lossy().into_owned();
            let m = std::fs::symlink_metadata(&p).unwrap();
            let mode = m.mode() & 0o7777;
            let desc = if m.file_type().is_symlink() {
                format!("link -> {}", std::fs::read_link(&p).unwrap().display())
            } else if m.is_dir() {
                stack.push(p.clone());
                format!("dir {mode:o}")
            } else {
                let data = std::fs::read(&p).unwrap();
                let sum = data.iter().fold(0xcbf29ce484222325u64, |h, &b| {
                    (h ^ u64::from(b)).wrapping_mul(0x100000001b3)
                });
                format!("file {mode:o} {} {sum:x} nlink {}", data.len(), m.nlink())
            };
            out.insert(rel, desc);
        }
    }
    out
}

fn busybox_in(dir: &Path, args: &[&str], under_lwk: bool) -> Output {
    let mut cmd = if under_lwk {
        let mut c = Command::new(LWK_VMM);
        c.args(["run", BUSYBOX]);
        c
    } else {
        Command::new(BUSYBOX)
    };
    run(cmd.args(args).current_dir(dir))
}

#[test]
fn busybox_applets_match_their_native_runs() {
    if !kvm_usable() || !busybox_present() {
        return;
    }
    let applets: &[&[&str]] = &[
        &["cat", "f.txt", "d/one", "l"],
        &["sort", "-k2", "f.txt"],
        &["md5sum", "f.txt", "d/e/two"],
        &["ls", "-la", "d"],
        &["ls", "-lR"],
        &["find", "."],
        &["find", ".", "-name", "t*", "-type", "f"],
        &["tar", "cf", "-", "d", "f.txt", "l"],
        &["tar", "cf", "out.tar", "d", "l"],
        &["tar", "xf", "archive.tar"],
        &["tar", "tvf", "archive.tar"],
        &["gzip", "-c", "d/e/two"],
        &["gzip", "f.txt"],
        &["sed", "-e", "s/a/A/g", "-e", "2d", "f.txt"],
        &["sed", "-i", "s/apple/APPLE/", "f.txt"],
        &[
            "awk",
            "{ n[$1] += $2 } END { for (k in n) print k, n[k] }",
            "f.txt",
        ],
        &["dd", "if=d/e/two", "of=copy", "bs=7", "count=100"],
        &["dd", "if=f.txt", "bs=5", "skip=1", "count=2"],
        &["stat", "-c", "%n %s %F %a %h", "f.txt", "d", "l", "script"],
        &["stat", "-L", "-c", "%n %F", "l", "dl"],
        &["mkdir", "-p", "x/y/z"],
        &["mkdir", "d"],
        &["mv", "f.txt", "d/e/moved"],
        &["mv", "d", "dd"],
        &["cp", "-r", "d", "d2"],
        &["cp", "-a", "d", "l", "d3"],
        &["rm", "-r", "d"],
        &["rm", "missing"],
        &["ln", "-s", "d/one", "newlink"],
        &["ln", "f.txt", "hard"],
        &["du", "-a", "d"],
        &["readlink", "l"],
        &["readlink", "-f", "dl"],
        &["od", "-c", "f.txt"],
        &["od", "-A", "x", "-t", "x1", "d/one"],
        &["cut", "-d", " ", "-f", "1", "f.txt"],
        &["grep", "-rn", "apple", "."],
        &["grep", "-c", "nothing", "f.txt"],
        &["wc", "-lc", "f.txt", "d/e/two"],
        &["chmod", "-R", "go-rwx", "d"],
        &["touch", "-d", "2020-01-02 03:04:05", "f.txt", "new"],
        &["sha256sum", "d/e/two"],
        &["head", "-c", "20", "d/e/two"],
        &["tail", "-n", "2", "f.txt"],
        &["uniq", "-c", "f.txt"],
        &["cmp", "f.txt", "d/one"],
        &["realpath", "dl"],
    ];
    let mut failures = Vec::new();
    for (i, args) in applets.iter().enumerate() {
        // Both runs use the same path (absolute paths in the output must match too); the
        // native tree is moved aside before the lwk-vmm run.
        let dir = scratch(&format!("bb-{i}"));
        let native_dir = scratch(&format!("bb-{i}-native"));
        fixture(&dir);
        let n = busybox_in(&dir, args, false);
        std::fs::remove_dir(&native_dir).unwrap();
        std::fs::rename(&dir, &native_dir).unwrap();
        std::fs::create_dir(&dir).unwrap();
        fixture(&dir);
        let l = busybox_in(&dir, args, true);
        let lwk_dir = dir;
        let (tn, tl) = (tree(&native_dir), tree(&lwk_dir));
        let label = args.join(" ");
        if n.stdout == l.stdout && status_of(&n) == status_of(&l) && tn == tl {
            eprintln!("PASS busybox {label} ({})", status_of(&l));
        } else {
            eprintln!(
                "FAIL busybox {label}: native {} / lwk-vmm {}\n--- native stdout\n{}--- lwk-vmm stdout\n{}--- lwk-vmm stderr\n{}--- trees equal: {}\nnative {tn:#?}\nlwk {tl:#?}",
                status_of(&n),
                status_of(&l),
                String::from_utf8_lossy(&n.stdout),
                String::from_utf8_lossy(&l.stdout),
                String::from_utf8_lossy(&l.stderr),
                tn == tl,
            );
            failures.push(label);
        }
    }
    assert!(
        failures.is_empty(),
        "busybox applets differing: {failures:?}"
    );
}

/// Runs busybox inside `root` (its copy at /bin/busybox there) with `--cwd cwd`.
fn in_root(root: &Path, cwd: &str, args: &[&str]) -> Output {
    run(Command::new(LWK_VMM)
        .args(["run", "--root"])
        .arg(root)
        .args(["--cwd", cwd, "/bin/busybox"])
        .args(args))
}

#[test]
fn nothing_escapes_the_root() {
    if !kvm_usable() || !busybox_present() {
        return;
    }
    let base = scratch("escape");
    let root = base.join("root");
    let outside = base.join("outside");
    std::fs::create_dir_all(root.join("bin")).unwrap();
    std::fs::create_dir_all(root.join("sub/deeper")).unwrap();
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::copy(BUSYBOX, root.join("bin/busybox")).unwrap();
    let marker = outside.join("marker");
    std::fs::write(&marker, "SECRET-OUTSIDE-THE-ROOT\n").unwrap();
    std::fs::write(root.join("inside"), "inside the root\n").unwrap();
    let m = marker.to_str().unwrap();
    let depth = marker.components().count();
    let ups = "../".repeat(depth + 3);
    let rel_marker = format!("{ups}{}", m.trim_start_matches('/'));
    // Symlinks planted inside the root that point outside it.
    let link = |name: &str, target: &str| {
        std::os::unix::fs::symlink(target, root.join(name)).unwrap();
    };
    link("abs", m);
    link("rel", &rel_marker);
    link("sub/deeper/up", &format!("../../{rel_marker}"));
    link("toroot", "/");
    link("outdir", outside.to_str().unwrap());
    let attempts: Vec<Vec<String>> = vec![
        vec!["cat".into(), format!("/../../..{m}")],
        vec!["cat".into(), rel_marker.clone()],
        vec!["cat".into(), format!("sub/deeper/{rel_marker}")],
        vec!["cat".into(), "/abs".into()],
        vec!["cat".into(), "/rel".into()],
        vec!["cat".into(), "/sub/deeper/up".into()],
        vec!["cat".into(), format!("/toroot/..{m}")],
        vec!["cat".into(), "/outdir/marker".into()],
        vec!["cat".into(), format!("/proc/self/root{m}")],
        vec!["cat".into(), format!("/proc/1/root{m}")],
        vec!["ls".into(), "-la".into(), "/..".into(), "/outdir/".into()],
        vec!["find".into(), "/".into(), "-name".into(), "marker".into()],
        vec!["cp".into(), "/inside".into(), "/outdir/planted".into()],
        vec![
            "cp".into(),
            "/inside".into(),
            format!(
                "{ups}{}/planted2",
                outside.to_str().unwrap().trim_start_matches('/')
            ),
        ],
        vec![
            "ln".into(),
            "-s".into(),
            "/inside".into(),
            "/outdir/planted3".into(),
        ],
        vec!["mv".into(), "/abs".into(), "/outdir/planted4".into()],
        vec!["readlink".into(), "-f".into(), "/rel".into()],
        vec!["realpath".into(), "/toroot/..".into()],
    ];
    for a in &attempts {
        let args: Vec<&str> = a.iter().map(String::as_str).collect();
        let o = in_root(&root, "/sub", &args);
        let all = format!(
            "{}{}",
            String::from_utf8_lossy(&o.stdout),
            String::from_utf8_lossy(&o.stderr)
        );
        eprintln!("escape attempt {args:?}: {} {}", status_of(&o), all.trim());
        assert!(
            !all.contains("SECRET"),
            "{args:?} read the marker outside the root: {all}"
        );
        assert!(!all.contains("panicked"), "{args:?}: {all}");
    }
    // The root really is used: a path inside it works, and `..` at the top stays there.
    let o = in_root(&root, "/sub/deeper", &["cat", "../../../../inside"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "inside the root\n");
    let o = in_root(&root, "/", &["pwd"]);
    assert_eq!(String::from_utf8_lossy(&o.stdout), "/\n");
    // Nothing was created or changed outside.
    let names: Vec<_> = std::fs::read_dir(&outside)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, vec![std::ffi::OsString::from("marker")]);
    assert_eq!(
        std::fs::read_to_string(&marker).unwrap(),
        "SECRET-OUTSIDE-THE-ROOT\n"
    );
}

#[test]
fn inherited_fds_are_seen_as_natively() {
    if !kvm_usable() {
        return;
    }
    let (prog, _) = program("inherited_fds-glibc");
    let dir = scratch("fds");
    let five = dir.join("five");
    std::fs::write(&five, "hello from fd five\n").unwrap();
    // fd 5: a file, fd 7: /dev/null for writing, fd 9: a pipe end (from the shell's stdin).
    let script = "exec \"$@\" 5<\"$FIVE\" 7>/dev/null 9<&0";
    let go = |under_lwk: bool| {
        let mut c = Command::new("/bin/sh");
        c.args(["-c", script, "sh"]);
        if under_lwk {
            c.args([LWK_VMM, "run"]);
        }
        c.arg(&prog).env("FIVE", &five);
        run(&mut c)
    };
    let (n, l) = (go(false), go(true));
    let text = String::from_utf8_lossy(&l.stdout);
    eprintln!(
        "native:\n{}lwk-vmm:\n{text}",
        String::from_utf8_lossy(&n.stdout)
    );
    assert_eq!(n.stdout, l.stdout, "{}", String::from_utf8_lossy(&l.stderr));
    assert!(text.contains("fd 5: file\n") && text.contains("fd 5 says: hello from fd five"));
    assert!(text.contains("fd 7: chr\n") && text.contains("fd 9: chr\n"));
}
