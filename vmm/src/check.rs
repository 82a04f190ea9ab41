//! `lwk-vmm check`: can jobs run on this host, and what would they get?
//!
//! Reads only public host state (/dev/kvm, /sys, /proc, the process's affinity) and KVM's
//! capabilities; prints one line per fact and concrete advice. Exit status 0 when jobs can run.

use kvm_ioctls::{Cap, Kvm};
use std::fmt::Write as _;
use std::path::Path;

fn read(path: &str) -> Option<String> {
    std::fs::read_to_string(path)
        .ok()
        .map(|s| s.trim().to_string())
}

fn bracketed(mode: &str) -> &str {
    mode.split_whitespace()
        .find(|w| w.starts_with('['))
        .map_or(mode, |w| w.trim_matches(['[', ']']))
}

/// The KVM implementation behind /dev/kvm and what it means for jobs.
fn kvm_flavour() -> (String, String) {
    let loaded = |m: &str| Path::new(&format!("/sys/module/{m}")).exists();
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let flags = cpuinfo
        .lines()
        .find(|l| l.starts_with("flags"))
        .unwrap_or("");
    let nested = flags.split_whitespace().any(|f| f == "hypervisor");
    if loaded("kvm_pvm") {
        return (
            "kvm_pvm (software virtualization, nested)".into(),
            "guest ring 0 is emulated (~1 us per instruction) and a ring-3 syscall arrives as a \
             page fault: jobs run correctly, local syscalls cost ~200 us instead of ~0.1 us; \
             ring-3 compute runs at native speed"
                .into(),
        );
    }
    let hw = if loaded("kvm_intel") {
        "Intel VT-x (kvm_intel)"
    } else if loaded("kvm_amd") {
        "AMD-V (kvm_amd)"
    } else {
        "unknown"
    };
    let note = if nested {
        "running inside a VM (nested virtualization): exits are slower than on bare metal"
    } else {
        "hardware virtualization: the intended platform"
    };
    (hw.into(), note.into())
}

/// Prints the report; returns whether jobs can run here.
pub fn run() -> bool {
    let mut out = String::new();
    let mut advice: Vec<String> = Vec::new();
    let mut ok = true;

    let (flavour, meaning) = kvm_flavour();
    let _ = writeln!(out, "KVM flavour:        {flavour}");
    let _ = writeln!(out, "                    {meaning}");
    match std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/kvm")
    {
        Ok(_) => match Kvm::new() {
            Ok(kvm) => {
                let _ = writeln!(
                    out,
                    "/dev/kvm:           usable (API {}, up to {} vCPUs per VM)",
                    kvm.get_api_version(),
                    kvm.get_max_vcpus()
                );
                if !kvm.check_extension(Cap::Xcrs) {
                    let _ = writeln!(
                        out,
                        "                    no KVM_CAP_XCRS: programs cannot use AVX"
                    );
                }
            }
            Err(e) => {
                ok = false;
                let _ = writeln!(out, "/dev/kvm:           opens, but KVM refused: {e}");
            }
        },
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            ok = false;
            let _ = writeln!(out, "/dev/kvm:           missing");
            advice.push("load KVM: modprobe kvm_intel (or kvm_amd), and enable virtualization in the firmware".into());
        }
        Err(e) => {
            ok = false;
            let _ = writeln!(out, "/dev/kvm:           not accessible ({e})");
            advice.push(
                "add your user to the 'kvm' group (then log in again), or run as root".into(),
            );
        }
    }

    let mut sizes: Vec<(u64, String)> = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|d| {
            d.filter_map(|e| {
                let name = e.ok()?.file_name().into_string().ok()?;
                let kb: u64 = name
                    .strip_prefix("hugepages-")?
                    .strip_suffix("kB")?
                    .parse()
                    .ok()?;
                Some((kb, name))
            })
            .collect()
        })
        .unwrap_or_default();
    sizes.sort();
    for (kb, name) in &sizes {
        let free =
            read(&format!("/sys/kernel/mm/hugepages/{name}/free_hugepages")).unwrap_or_default();
        let total =
            read(&format!("/sys/kernel/mm/hugepages/{name}/nr_hugepages")).unwrap_or_default();
        let label = if *kb >= 1024 * 1024 {
            format!("{}G", kb / 1024 / 1024)
        } else {
            format!("{}M", kb / 1024)
        };
        let _ = writeln!(
            out,
            "hugepages {label:>3}:      {free} free of {total} reserved"
        );
        if free == "0" {
            advice.push(format!(
                "reserve {label} hugepages for guest memory (as root): echo N > /sys/kernel/mm/hugepages/{name}/nr_hugepages"
            ));
        }
    }
    let thp = read("/sys/kernel/mm/transparent_hugepage/enabled").unwrap_or_default();
    let defrag = read("/sys/kernel/mm/transparent_hugepage/defrag").unwrap_or_default();
    let _ = writeln!(
        out,
        "THP:                enabled={}, defrag={}",
        bracketed(&thp),
        bracketed(&defrag)
    );

    let isolated = read("/sys/devices/system/cpu/isolated").unwrap_or_default();
    let nohz = read("/sys/devices/system/cpu/nohz_full").unwrap_or_default();
    let show = |s: &str| {
        if s.is_empty() || s == "(null)" {
            "none".to_string()
        } else {
            s.to_string()
        }
    };
    let _ = writeln!(out, "isolated cores:     {}", show(&isolated));
    let _ = writeln!(out, "nohz_full cores:    {}", show(&nohz));
    let allowed = crate::job::allowed_cpus();
    let iso = crate::config::parse_cpu_list(&isolated).unwrap_or_default();
    let usable_iso = allowed.iter().filter(|c| iso.contains(c)).count();
    let _ = writeln!(
        out,
        "cores for vCPUs:    {} allowed to lwk-vmm ({} of them isolated): a job can have up to {} vCPUs",
        allowed.len(),
        usable_iso,
        allowed.len().min(offload_abi::layout::MAX_VCPUS as usize)
    );
    if usable_iso == 0 {
        advice.push(
            "for noise-free cores, boot the host with isolcpus=<list> nohz_full=<list> and run jobs on those cores"
                .into(),
        );
    }
    print!("{out}");
    if !advice.is_empty() {
        println!("advice:");
        for a in &advice {
            println!("  - {a}");
        }
    }
    println!(
        "{}",
        if ok {
            "jobs can run here"
        } else {
            "jobs cannot run here"
        }
    );
    ok
}
