//! Moving ABI structs between host and guest memory by value.
//!
//! [`Wire`] lets vm-memory copy a whole `#[repr(C)]` integer-only ABI struct in or out of guest
//! RAM (`read_obj`/`write_obj` copy; no reference into guest memory is ever formed). Values read
//! from the guest are untrusted numbers: callers validate before use.

use vm_memory::ByteValued;

/// Marker for the ABI structs that are plain integers with explicit padding.
///
/// # Safety
/// Implementors must be `#[repr(C)]`, contain only integers (or arrays of them), have no
/// implicit padding, and accept every bit pattern.
pub unsafe trait PlainData: Copy + Send + Sync + 'static {}

// SAFETY: repr(C), integer fields only, padding explicit (layout asserted in offload-abi).
unsafe impl PlainData for offload_abi::BootInfo {}
// SAFETY: as above.
unsafe impl PlainData for offload_abi::BridgeRequest {}
// SAFETY: as above.
unsafe impl PlainData for offload_abi::GuestStats {}
// SAFETY: as above.
unsafe impl PlainData for offload_abi::AsyncSlot {}
// SAFETY: as above (arrays of ProcRecord, ThreadRecord and ThreadCpu, each asserted).
unsafe impl PlainData for offload_abi::ProcTable {}

/// A plain ABI value as vm-memory bytes.
#[repr(transparent)]
#[derive(Clone, Copy)]
pub struct Wire<T: PlainData>(pub T);

impl<T: PlainData + Default> Default for Wire<T> {
    fn default() -> Self {
        Wire(T::default())
    }
}

// SAFETY: `Wire<T>` is repr(transparent) over a `PlainData` type, which is integer-only with no
// implicit padding and valid for every bit pattern — exactly ByteValued's contract.
unsafe impl<T: PlainData> ByteValued for Wire<T> {}
