//! FPU state switches for the LWK's scheduler ([`offload_abi::port::FPU_SWITCH`]).
//!
//! When the LWK runs two threads on one vCPU it must switch their FPU/SSE/AVX registers, and
//! its ring 0 cannot run `xsave`/`xrstor` on every KVM (ENVIRONMENT.md: kvm_pvm's emulator
//! lacks them). The VMM does it instead with KVM_GET_XSAVE / KVM_SET_XSAVE, storing the state
//! in guest RAM the LWK names. Everything the guest names is checked: a descriptor or area
//! outside guest RAM or misaligned is an error that ends the job, never a host panic.

use kvm_bindings::kvm_xsave;
use kvm_ioctls::VcpuFd;
use offload_abi::{FPU_AREA_SIZE, FpuSwitch};
use vm_memory::{Bytes, GuestAddress, GuestMemoryMmap};

/// Why a switch could not be done.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FpuError {
    /// The port write was not 4 bytes.
    #[error("FPU switch: a {0}-byte port write (expected 4)")]
    Width(usize),
    /// The descriptor or an area is not in guest RAM.
    #[error("FPU switch: guest-physical {0:#x} is not guest RAM")]
    Outside(u64),
    /// An area is not 4 KiB-aligned.
    #[error("FPU switch: area {0:#x} is not 4 KiB-aligned")]
    Misaligned(u64),
    /// KVM refused the state.
    #[error("FPU switch: KVM refused {what}: {errno}")]
    Kvm {
        /// Which ioctl.
        what: &'static str,
        /// The error.
        errno: i32,
    },
}

/// The descriptor a port value names.
pub fn descriptor(mem: &GuestMemoryMmap, value: &[u8]) -> Result<FpuSwitch, FpuError> {
    let v: [u8; 4] = value.try_into().map_err(|_| FpuError::Width(value.len()))?;
    let gpa = u64::from(u32::from_le_bytes(v)) << 4;
    let mut raw = [0u8; 16];
    mem.read_slice(&mut raw, GuestAddress(gpa))
        .map_err(|_| FpuError::Outside(gpa))?;
    let word = |i: usize| u64::from_le_bytes(raw[i..i + 8].try_into().unwrap_or_default());
    Ok(FpuSwitch {
        save: word(0),
        restore: word(8),
    })
}

fn check_area(gpa: u64) -> Result<GuestAddress, FpuError> {
    if !gpa.is_multiple_of(FPU_AREA_SIZE) {
        return Err(FpuError::Misaligned(gpa));
    }
    Ok(GuestAddress(gpa))
}

/// Serialises a `kvm_xsave` into the area's bytes.
fn to_bytes(x: &kvm_xsave) -> Vec<u8> {
    x.region.iter().flat_map(|w| w.to_le_bytes()).collect()
}

/// Does what `desc` asks on `vcpu`: stores its state at `save`, then loads `restore`'s.
pub fn switch(vcpu: &VcpuFd, mem: &GuestMemoryMmap, desc: FpuSwitch) -> Result<(), FpuError> {
    const _: () = assert!(size_of::<kvm_xsave>() as u64 == FPU_AREA_SIZE);
    // Validate both before changing anything.
    let save = (desc.save != 0)
        .then(|| check_area(desc.save))
        .transpose()?;
    let restore = (desc.restore != 0)
        .then(|| check_area(desc.restore))
        .transpose()?;
    let mut incoming = None;
    if let Some(at) = restore {
        let mut raw = vec![0u8; FPU_AREA_SIZE as usize];
        mem.read_slice(&mut raw, at)
            .map_err(|_| FpuError::Outside(at.0))?;
        let mut x = kvm_xsave::default();
        for (w, b) in x.region.iter_mut().zip(raw.chunks_exact(4)) {
            *w = u32::from_le_bytes(b.try_into().unwrap_or_default());
        }
        incoming = Some(x);
    }
    if let Some(at) = save {
        let x = vcpu.get_xsave().map_err(|e| FpuError::Kvm {
            what: "KVM_GET_XSAVE",
            errno: e.errno(),
        })?;
        mem.write_slice(&to_bytes(&x), at)
            .map_err(|_| FpuError::Outside(at.0))?;
    }
    if let Some(x) = incoming {
        // SAFETY: lwk-vmm never enables dynamic XSTATE features for its guests
        // (no ARCH_REQ_XCOMP_GUEST_PERM), so KVM_SET_XSAVE reads at most the 4096 bytes of
        // `kvm_xsave` (the condition kvm-ioctls documents). KVM validates the contents itself
        // and refuses a state the vCPU cannot load.
        unsafe { vcpu.set_xsave(&x) }.map_err(|e| FpuError::Kvm {
            what: "KVM_SET_XSAVE",
            errno: e.errno(),
        })?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ram() -> GuestMemoryMmap {
        GuestMemoryMmap::from_ranges(&[(GuestAddress(0), 0x10000)]).expect("guest memory")
    }

    #[test]
    fn descriptor_is_read_from_the_named_address() {
        let mem = ram();
        mem.write_slice(&0x3000u64.to_le_bytes(), GuestAddress(0x100))
            .unwrap();
        mem.write_slice(&0x4000u64.to_le_bytes(), GuestAddress(0x108))
            .unwrap();
        let d = descriptor(&mem, &(0x100u32 >> 4).to_le_bytes()).unwrap();
        assert_eq!(
            d,
            FpuSwitch {
                save: 0x3000,
                restore: 0x4000
            }
        );
    }

    #[test]
    fn hostile_descriptors_are_errors() {
        let mem = ram();
        assert_eq!(descriptor(&mem, &[1, 2]), Err(FpuError::Width(2)));
        assert_eq!(
            descriptor(&mem, &(0x10_0000u32 >> 4).to_le_bytes()),
            Err(FpuError::Outside(0x10_0000))
        );
        // The last 16 bytes of RAM still hold a whole descriptor.
        assert!(descriptor(&mem, &(0xfff0u32 >> 4).to_le_bytes()).is_ok());
        assert_eq!(check_area(0x1234), Err(FpuError::Misaligned(0x1234)));
    }

    #[test]
    fn state_round_trips_through_guest_memory() {
        let Ok(kvm) = kvm_ioctls::Kvm::new() else {
            assert!(
                std::env::var("LWK_VMM_REQUIRE_KVM").as_deref() != Ok("1"),
                "/dev/kvm is not usable and LWK_VMM_REQUIRE_KVM=1: KVM tests must run here"
            );
            eprintln!("SKIPPED: fpu round trip needs /dev/kvm");
            return;
        };
        let vm = kvm.create_vm().expect("VM");
        let vcpu = vm.create_vcpu(0).expect("vCPU");
        let mem = ram();
        let mut x = vcpu.get_xsave().expect("KVM_GET_XSAVE");
        // MXCSR (legacy area offset 24): round toward zero, all exceptions masked; it counts
        // only with SSE marked in use in XSTATE_BV (header at offset 512).
        x.region[6] = 0x7f80;
        x.region[128] |= 0b11;
        // SAFETY: as in `switch`: no dynamic XSTATE features, a 4096-byte `kvm_xsave`.
        unsafe { vcpu.set_xsave(&x) }.expect("KVM_SET_XSAVE");
        switch(
            &vcpu,
            &mem,
            FpuSwitch {
                save: 0x2000,
                restore: 0,
            },
        )
        .unwrap();
        let mut raw = [0u8; 4];
        mem.read_slice(&mut raw, GuestAddress(0x2000 + 24)).unwrap();
        assert_eq!(u32::from_le_bytes(raw), 0x7f80);
        // Load a different state from another area and check the vCPU has it.
        let mut other = to_bytes(&x);
        other[24..28].copy_from_slice(&0x1f80u32.to_le_bytes());
        mem.write_slice(&other, GuestAddress(0x3000)).unwrap();
        switch(
            &vcpu,
            &mem,
            FpuSwitch {
                save: 0,
                restore: 0x3000,
            },
        )
        .unwrap();
        assert_eq!(vcpu.get_xsave().unwrap().region[6], 0x1f80);
        // A misaligned area changes nothing.
        assert!(
            switch(
                &vcpu,
                &mem,
                FpuSwitch {
                    save: 0x2000,
                    restore: 0x2001,
                }
            )
            .is_err()
        );
        assert_eq!(vcpu.get_xsave().unwrap().region[6], 0x1f80);
    }
}
