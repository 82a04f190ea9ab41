//! Host signals (issue #7): signals sent to `lwk-vmm` reach the program. Each test starts the
//! program natively and under lwk-vmm, waits for its "ready" line, sends the same signal to
//! both, and compares how they end (a shell sees 128+N for a program killed by N).

mod common;

use common::*;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::OwnedFd;
use std::os::unix::process::ExitStatusExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// How a run ended, its stdout after "ready", and the time from the signal to the end.
struct Ended {
    status: ExitStatus,
    stdout: String,
    latency: Duration,
}

fn spawn(cmd: &mut Command, stdin: Stdio) -> Child {
    cmd.stdin(stdin)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn")
}

/// Waits for "ready", sends `signals` (in order, 20 ms apart), and waits for the end (at most
/// 60 s: a program that ignores the signal when it should not fails the test, not CI).
fn signal_after_ready(mut child: Child, signals: &[i32]) -> Ended {
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready line");
    assert_eq!(line, "ready\n");
    // Let the program get into its loop or blocking call.
    std::thread::sleep(Duration::from_millis(50));
    let mut sent = Instant::now();
    for (i, &s) in signals.iter().enumerate() {
        if i > 0 {
            std::thread::sleep(Duration::from_millis(20));
        }
        sent = Instant::now();
        // SAFETY: kill on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(child.id() as i32, s) }, 0);
    }
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait") {
            break st;
        }
        if sent.elapsed() > Duration::from_secs(60) {
            let _ = child.kill();
            let _ = child.wait();
            panic!("did not end within 60 s of signal(s) {signals:?}");
        }
        std::thread::sleep(Duration::from_micros(500));
    };
    let latency = sent.elapsed();
    let mut stdout = String::new();
    let _ = out.read_to_string(&mut stdout);
    Ended {
        status,
        stdout,
        latency,
    }
}

fn lwk_cmd(prog: &std::path::Path, args: &[&str]) -> Command {
    let mut c = Command::new(LWK_VMM);
    c.arg("run").arg(prog).args(args);
    c
}

fn describe(s: &ExitStatus) -> String {
    match (s.code(), s.signal()) {
        (Some(c), _) => format!("exit {c}"),
        (None, Some(n)) => format!("signal {n}"),
        _ => "?".into(),
    }
}

/// An empty pipe as stdin (the write end stays open, so reads block), and that write end.
fn empty_pipe() -> (Stdio, OwnedFd) {
    let (r, w) = std::io::pipe().expect("pipe");
    (Stdio::from(OwnedFd::from(r)), OwnedFd::from(w))
}

fn killed_like_native(prog: &str, args: &[&str], signal: i32, blocking: bool) -> Duration {
    let (prog, _) = program(prog);
    let (stdin, _w1) = empty_pipe();
    let native = signal_after_ready(
        spawn(
            Command::new(&prog).args(args),
            if blocking { stdin } else { Stdio::null() },
        ),
        &[signal],
    );
    let (stdin, _w2) = empty_pipe();
    let lwk = signal_after_ready(
        spawn(
            &mut lwk_cmd(&prog, args),
            if blocking { stdin } else { Stdio::null() },
        ),
        &[signal],
    );
    assert_eq!(
        native.status.signal(),
        Some(signal),
        "native: {}",
        describe(&native.status)
    );
    assert_eq!(
        lwk.status.signal(),
        Some(signal),
        "lwk-vmm ended with {} (stdout {:?}), the program natively with {}",
        describe(&lwk.status),
        lwk.stdout,
        describe(&native.status)
    );
    assert_eq!(lwk.stdout, native.stdout);
    eprintln!(
        "{} {:?} signal {signal}: native ended {:?} after kill, lwk-vmm {:?}",
        prog.display(),
        args,
        native.latency,
        lwk.latency
    );
    lwk.latency
}

#[test]
fn sigint_ends_a_spinning_program_with_status_130() {
    if !kvm_usable() {
        return;
    }
    for p in ["sig_spin-glibc", "sig_spin-musl"] {
        killed_like_native(p, &["30000"], libc::SIGINT, false);
    }
    // What a shell sees: 128 + 2.
    let (prog, _) = program("sig_spin-glibc");
    let o = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "{LWK_VMM} run {} 30000 & sleep 0.5; kill -INT $!; wait $!; echo status $?",
            prog.display()
        ))
        .stdin(Stdio::null())
        .output()
        .expect("sh");
    let out = String::from_utf8_lossy(&o.stdout);
    assert!(out.contains("status 130"), "{out}");
}

#[test]
fn sigterm_and_sighup_end_a_spinning_program() {
    if !kvm_usable() {
        return;
    }
    killed_like_native("sig_spin-glibc", &["30000"], libc::SIGTERM, false);
    killed_like_native("sig_spin-musl", &["30000"], libc::SIGHUP, false);
    killed_like_native("sig_spin-glibc", &["30000"], libc::SIGUSR1, false);
}

#[test]
fn sigint_interrupts_a_read_blocked_on_an_empty_pipe() {
    if !kvm_usable() {
        return;
    }
    for p in ["sig_block_read-glibc", "sig_block_read-musl"] {
        let t = killed_like_native(p, &[], libc::SIGINT, true);
        assert!(t < Duration::from_secs(5), "{p}: {t:?}");
        let t = killed_like_native(p, &["poll"], libc::SIGTERM, true);
        assert!(t < Duration::from_secs(5), "{p} poll: {t:?}");
    }
}

#[test]
fn sigwinch_and_sigcont_are_ignored_and_do_not_interrupt() {
    if !kvm_usable() {
        return;
    }
    let (prog, _) = program("sig_spin-glibc");
    let stats = stats_path("hostsig-ignored");
    let native = signal_after_ready(
        spawn(Command::new(&prog).arg("700"), Stdio::null()),
        &[libc::SIGWINCH, libc::SIGCONT, libc::SIGWINCH],
    );
    let mut cmd = Command::new(LWK_VMM);
    cmd.arg("run")
        .arg("--stats-json")
        .arg(&stats)
        .arg(&prog)
        .arg("700");
    let lwk = signal_after_ready(
        spawn(&mut cmd, Stdio::null()),
        &[libc::SIGWINCH, libc::SIGCONT, libc::SIGWINCH],
    );
    assert!(native.status.success());
    assert!(lwk.status.success(), "{}", describe(&lwk.status));
    assert_eq!(lwk.stdout, native.stdout);
    assert_eq!(lwk.stdout, "done\n");
    let s = read_stats(&stats);
    assert_eq!(s["host_signals"], 3, "{s}");
    assert_eq!(s["interrupted_offloads"], 0, "{s}");

    // A blocked read is not interrupted by SIGWINCH: it returns the data written later.
    let (prog, _) = program("sig_block_read-musl");
    let (stdin, w) = empty_pipe();
    let mut child = spawn(&mut lwk_cmd(&prog, &[]), stdin);
    let mut out = BufReader::new(child.stdout.take().expect("stdout"));
    let mut line = String::new();
    out.read_line(&mut line).expect("ready");
    std::thread::sleep(Duration::from_millis(50));
    // SAFETY: kill on our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGWINCH) };
    std::thread::sleep(Duration::from_millis(200));
    assert!(
        child.try_wait().expect("wait").is_none(),
        "SIGWINCH ended it"
    );
    let mut w = std::fs::File::from(w);
    std::io::Write::write_all(&mut w, b"abc").expect("write");
    drop(w);
    let st = child.wait().expect("wait");
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("stdout");
    assert!(st.success(), "{}", describe(&st));
    assert_eq!(rest, "read: 3 bytes\n");
}

#[test]
fn interrupted_offloads_are_counted() {
    if !kvm_usable() {
        return;
    }
    let (prog, _) = program("sig_block_read-glibc");
    let stats = stats_path("hostsig-interrupted");
    let (stdin, _w) = empty_pipe();
    let mut cmd = Command::new(LWK_VMM);
    cmd.arg("run").arg("--stats-json").arg(&stats).arg(&prog);
    let lwk = signal_after_ready(spawn(&mut cmd, stdin), &[libc::SIGINT]);
    assert_eq!(lwk.status.signal(), Some(libc::SIGINT));
    let s = read_stats(&stats);
    assert_eq!(s["host_signals"], 1, "{s}");
    assert_eq!(s["interrupted_offloads"], 1, "{s}");
}

/// Not an assertion: the kill-to-exit latency (median of 5), printed for docs/PERFORMANCE.md.
#[test]
fn kill_to_exit_latency() {
    if !kvm_usable() {
        return;
    }
    for (name, args, blocking) in [
        ("sig_spin-glibc", &["30000"][..], false),
        ("sig_block_read-glibc", &[][..], true),
    ] {
        let (prog, _) = program(name);
        let mut native = Vec::new();
        let mut lwk = Vec::new();
        for _ in 0..5 {
            let (stdin, _w) = empty_pipe();
            let stdin = if blocking { stdin } else { Stdio::null() };
            native.push(
                signal_after_ready(
                    spawn(Command::new(&prog).args(args), stdin),
                    &[libc::SIGINT],
                )
                .latency,
            );
            let (stdin, _w) = empty_pipe();
            let stdin = if blocking { stdin } else { Stdio::null() };
            lwk.push(
                signal_after_ready(spawn(&mut lwk_cmd(&prog, args), stdin), &[libc::SIGINT])
                    .latency,
            );
        }
        native.sort();
        lwk.sort();
        eprintln!(
            "LATENCY {name}: SIGINT to exit, median of 5: native {:?}, lwk-vmm {:?} (lwk-vmm min {:?} max {:?})",
            native[2], lwk[2], lwk[0], lwk[4]
        );
    }
}

#[test]
fn sigint_ends_a_job_whose_other_vcpu_is_blocked_in_read() {
    if !kvm_usable() || std::thread::available_parallelism().map_or(1, |n| n.get()) < 2 {
        return;
    }
    // The reader thread blocks on vCPU 1; vCPU 0 (which takes the interrupt) idles in
    // pthread_join.
    for p in ["sig_thread_read-glibc", "sig_thread_read-musl"] {
        let (prog, _) = program(p);
        let stats = stats_path(&format!("hostsig-{p}"));
        let (stdin, _w) = empty_pipe();
        let mut cmd = Command::new(LWK_VMM);
        cmd.arg("run")
            .args(lwk_options(&prog))
            .arg("--stats-json")
            .arg(&stats)
            .arg(&prog);
        let lwk = signal_after_ready(spawn(&mut cmd, stdin), &[libc::SIGINT]);
        assert_eq!(
            lwk.status.signal(),
            Some(libc::SIGINT),
            "{p}: {}",
            describe(&lwk.status)
        );
        assert!(
            lwk.latency < Duration::from_secs(5),
            "{p}: {:?}",
            lwk.latency
        );
        let s = read_stats(&stats);
        assert_eq!(s["vcpus"].as_array().map(Vec::len), Some(2), "{s}");
        assert_eq!(s["host_signals"], 1, "{s}");
    }
}

/// Runs `prog args` natively and under lwk-vmm with an empty pipe as stdin, sends `signal`
/// after "ready", then (if `feed`) writes `feed` to the pipe 100 ms later; both must end the
/// same way with the same output.
fn handled_like_native(prog: &str, args: &[&str], signal: i32, feed: Option<&[u8]>) -> String {
    let (prog, _) = program(prog);
    let run_one = |cmd: &mut Command| {
        let (stdin, w) = empty_pipe();
        let mut child = spawn(cmd, stdin);
        let mut out = BufReader::new(child.stdout.take().expect("stdout"));
        let mut line = String::new();
        out.read_line(&mut line).expect("ready line");
        assert_eq!(line, "ready\n");
        std::thread::sleep(Duration::from_millis(50));
        // SAFETY: kill on our own child's pid with a valid signal number.
        assert_eq!(unsafe { libc::kill(child.id() as i32, signal) }, 0);
        // The write end stays open until the program ended (EOF must not race the signal).
        let mut w = std::fs::File::from(w);
        if let Some(data) = feed {
            std::thread::sleep(Duration::from_millis(100));
            std::io::Write::write_all(&mut w, data).expect("feed the pipe");
        }
        let started = Instant::now();
        let status = loop {
            if let Some(st) = child.try_wait().expect("wait") {
                break st;
            }
            if started.elapsed() > Duration::from_secs(60) {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} did not end within 60 s of the signal");
            }
            std::thread::sleep(Duration::from_millis(1));
        };
        drop(w);
        let mut rest = String::new();
        let _ = out.read_to_string(&mut rest);
        (status, rest)
    };
    let (ns, nout) = run_one(Command::new(&prog).args(args));
    let (ls, lout) = run_one(&mut lwk_cmd(&prog, args));
    assert_eq!(
        describe(&ls),
        describe(&ns),
        "lwk-vmm output {lout:?}, native {nout:?}"
    );
    assert_eq!(lout, nout);
    lout
}

#[test]
fn host_signals_run_the_programs_handlers() {
    if !kvm_usable() {
        return;
    }
    for libc in ["glibc", "musl"] {
        let prog = format!("sig_host_handler-{libc}");
        // A spinning program's handler runs (the interrupt reaches ring 3) and it goes on.
        let out = handled_like_native(&prog, &["spin", "30000"], libc::SIGINT, None);
        assert!(
            out.contains("handler: SIGINT") && out.contains("by the handler"),
            "{out}"
        );
        // A read blocked in an offloaded call: without SA_RESTART it fails with EINTR...
        let out = handled_like_native(&prog, &["read"], libc::SIGTERM, None);
        assert!(out.contains("read: EINTR after 1"), "{out}");
        // ...with SA_RESTART it goes on and returns the data written after the signal.
        let out = handled_like_native(&prog, &["restart"], libc::SIGINT, Some(b"abc"));
        assert!(out.contains("read: 3 bytes after 1"), "{out}");
    }
}
