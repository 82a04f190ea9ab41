//! Benchmark (not a test): host-side cost of serving one offload request, `Servicer::serve`,
//! for the cheapest calls, so that the cost of the servicer's own locking (docs/DESIGN.md
//! "Concurrent offloads": the table's lock, an `Arc` clone of the host fd, the counters' lock)
//! can be seen apart from the VM exit, which is 3-4 orders of magnitude larger. Prints the best
//! of 7 runs of 200,000 calls each.
//!
//! `cargo run --release -p offload-host --example serve_cost`

use offload_abi::{BridgeRequest, op, syscalls::nr};
use offload_host::{FdTable, JobContext, LogSink, ProcessInfo, Servicer};
use std::os::fd::OwnedFd;
use vm_memory::{GuestAddress, GuestMemoryMmap};

struct Null;

impl LogSink for Null {
    fn log(&self, _: u64, _: &[u8]) {}
    fn trace(&self, _: &str) {}
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mem: GuestMemoryMmap = GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 1 << 20)])?;
    let root: OwnedFd = std::fs::File::open("/")?.into();
    let s = Servicer::new(
        FdTable::new(64),
        JobContext {
            root,
            root_path: "/".into(),
            cwd: b"/".to_vec(),
            exe: b"/bench".to_vec(),
            execfn: Vec::new(),
            process: ProcessInfo::default(),
        },
    );
    let null: OwnedFd = std::fs::File::open("/dev/null")?.into();
    s.process(0)
        .ok_or("no first process")?
        .fds
        .insert_at(3, null, false)
        .map_err(|e| format!("errno {}", e.0))?;
    let calls: [(&str, u64, [u64; 6]); 3] = [
        (
            "fcntl(9, F_GETFD), no such fd",
            nr::fcntl,
            [9, 1, 0, 0, 0, 0],
        ),
        ("fcntl(3, F_GETFD)", nr::fcntl, [3, 1, 0, 0, 0, 0]),
        (
            "lseek(3, 0, SEEK_SET) on /dev/null",
            nr::lseek,
            [3, 0, 0, 0, 0, 0],
        ),
    ];
    for (name, number, args) in calls {
        let mut best = f64::MAX;
        for _ in 0..7 {
            let n = 200_000;
            let start = std::time::Instant::now();
            for _ in 0..n {
                let mut req = BridgeRequest {
                    op: op::SYSCALL,
                    nr: number,
                    args,
                    ..Default::default()
                };
                s.serve(&mem, &mut req, &Null);
                std::hint::black_box(req.ret);
            }
            best = best.min(start.elapsed().as_nanos() as f64 / f64::from(n));
        }
        println!("{name}: {best:.1} ns per request");
    }
    Ok(())
}
