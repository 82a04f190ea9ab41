//! `lwk-devices`: what the guest can touch besides RAM — port-I/O devices on a [`PortBus`].
//!
//! Devices register their port ranges on the bus; the VMM's exit loop only asks the bus to
//! dispatch an access (no port numbers in the loop, STYLE.md practice 11). The devices here:
//! - [`ExitPort`]: the guest announces the end of the job;
//! - [`StartAps`]: vCPU 0 lets the other vCPUs start;
//! - [`Doorbell`]: the guest rings the offload bridge of a vCPU (`exit` transport); the work is
//!   done by a [`DoorbellHandler`] the VMM provides (the offload servicer);
//! - [`AsyncDoorbell`]: the guest submits an asynchronous offload (`port::OFFLOAD_ASYNC`); an
//!   [`AsyncHandler`] the VMM provides takes it over and returns at once.
//!
//! The bus is shared by all vCPU threads without a lock: it is fixed after registration and
//! devices take `&self` (each keeps whatever state it has behind its own fine-grained locks),
//! so a device access that blocks (an offloaded call waiting on the host) never stops other
//! vCPUs' accesses.
//!
//! Neighbours: `offload-abi` (port numbers); used by `lwk-vmm`. Never imports the VMM.
#![forbid(unsafe_code)]

use offload_abi::port;
use std::fmt;

/// What the vCPU loop should do after an access.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PortAction {
    /// Resume the vCPU.
    Continue,
    /// The job is over: stop running vCPUs.
    Stop,
}

/// A device on the I/O-port bus. Called concurrently by every vCPU thread.
pub trait PortDevice: Send + Sync {
    /// A guest write of `data` (1, 2 or 4 bytes) to `port` by vCPU `vcpu`.
    fn write(&self, vcpu: u32, port: u16, data: &[u8]) -> PortAction;
    /// A guest read of `data.len()` bytes from `port`; the default reads all ones, like an
    /// open bus.
    fn read(&self, _vcpu: u32, _port: u16, data: &mut [u8]) -> PortAction {
        data.fill(0xff);
        PortAction::Continue
    }
}

/// Errors registering devices.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Two devices claim the same port.
    #[error("I/O ports {base:#x}+{len} overlap a registered device")]
    Overlap {
        /// First port of the new range.
        base: u16,
        /// Number of ports.
        len: u16,
    },
}

struct Slot {
    base: u16,
    len: u16,
    device: Box<dyn PortDevice>,
}

/// Port ranges -> devices.
#[derive(Default)]
pub struct PortBus {
    slots: Vec<Slot>,
}

impl fmt::Debug for PortBus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list()
            .entries(self.slots.iter().map(|s| (s.base, s.len)))
            .finish()
    }
}

impl PortBus {
    /// An empty bus.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `device` for ports `base..base + len`.
    pub fn register(
        &mut self,
        base: u16,
        len: u16,
        device: Box<dyn PortDevice>,
    ) -> Result<(), BusError> {
        let end = u32::from(base) + u32::from(len);
        let overlaps = self.slots.iter().any(|s| {
            let s_end = u32::from(s.base) + u32::from(s.len);
            u32::from(base) < s_end && u32::from(s.base) < end
        });
        if overlaps || len == 0 {
            return Err(BusError::Overlap { base, len });
        }
        self.slots.push(Slot { base, len, device });
        Ok(())
    }

    fn find(&self, port: u16) -> Option<&Slot> {
        self.slots
            .iter()
            .find(|s| port >= s.base && u32::from(port) < u32::from(s.base) + u32::from(s.len))
    }

    /// Dispatches a write by vCPU `vcpu`; `None` if no device owns `port`.
    pub fn write(&self, vcpu: u32, port: u16, data: &[u8]) -> Option<PortAction> {
        self.find(port).map(|s| s.device.write(vcpu, port, data))
    }

    /// Dispatches a read by vCPU `vcpu`; `None` if no device owns `port`.
    pub fn read(&self, vcpu: u32, port: u16, data: &mut [u8]) -> Option<PortAction> {
        self.find(port).map(|s| s.device.read(vcpu, port, data))
    }
}

/// The exit port: any write ends the job (the LWK put the details in its statistics page).
#[derive(Debug, Default)]
pub struct ExitPort;

impl ExitPort {
    /// The port this device occupies.
    pub const PORT: u16 = port::EXIT;
}

impl PortDevice for ExitPort {
    fn write(&self, _vcpu: u32, _port: u16, _data: &[u8]) -> PortAction {
        PortAction::Stop
    }
}

/// A one-way gate: closed until opened once, then open forever.
#[derive(Debug, Default)]
pub struct Gate {
    open: std::sync::Mutex<bool>,
    opened: std::sync::Condvar,
}

impl Gate {
    /// Opens the gate and wakes every waiter.
    pub fn open(&self) {
        *self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = true;
        self.opened.notify_all();
    }

    /// Waits until the gate is open or `give_up` returns true (checked every 10 ms); returns
    /// whether it opened.
    pub fn wait(&self, give_up: impl Fn() -> bool) -> bool {
        let mut open = self
            .open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        while !*open {
            if give_up() {
                return false;
            }
            open = match self
                .opened
                .wait_timeout(open, std::time::Duration::from_millis(10))
            {
                Ok((g, _)) => g,
                Err(p) => p.into_inner().0,
            };
        }
        true
    }
}

/// The start port: vCPU 0 writes it once its shared state is ready; it opens a [`Gate`] the
/// other vCPU threads wait on before their first KVM_RUN.
#[derive(Debug)]
pub struct StartAps {
    gate: std::sync::Arc<Gate>,
}

impl StartAps {
    /// The port this device occupies.
    pub const PORT: u16 = port::START_APS;

    /// A start port that opens `gate`.
    pub fn new(gate: std::sync::Arc<Gate>) -> Self {
        StartAps { gate }
    }
}

impl PortDevice for StartAps {
    fn write(&self, _vcpu: u32, _port: u16, _data: &[u8]) -> PortAction {
        self.gate.open();
        PortAction::Continue
    }
}

/// Serves a rung doorbell: the request of vCPU `vcpu` is in its bridge page.
pub trait DoorbellHandler: Send + Sync {
    /// Handles the request synchronously (the vCPU waits in its exit). Called concurrently
    /// for different vCPUs.
    fn ring(&self, vcpu: u32);
}

/// The offload doorbell of the `exit` transport.
pub struct Doorbell<H: DoorbellHandler> {
    handler: H,
}

impl<H: DoorbellHandler> Doorbell<H> {
    /// The port this device occupies.
    pub const PORT: u16 = port::OFFLOAD;

    /// A doorbell that calls `handler`.
    pub fn new(handler: H) -> Self {
        Doorbell { handler }
    }
}

/// The value of a port write, zero-extended to 32 bits (a guest may write 1, 2 or 4 bytes).
fn value(data: &[u8]) -> u32 {
    let mut raw = [0u8; 4];
    for (dst, src) in raw.iter_mut().zip(data) {
        *dst = *src;
    }
    u32::from_le_bytes(raw)
}

impl<H: DoorbellHandler> PortDevice for Doorbell<H> {
    /// Rings the bridge of the vCPU that made the access. The value the guest writes (its
    /// vCPU id, by the ABI) is not trusted: a guest writing another vCPU's id must not get
    /// that vCPU's request page served twice at once by two threads.
    fn write(&self, vcpu: u32, _port: u16, _data: &[u8]) -> PortAction {
        self.handler.ring(vcpu);
        PortAction::Continue
    }
}

/// Takes over asynchronous offload submissions (`port::OFFLOAD_ASYNC`).
pub trait AsyncHandler: Send + Sync {
    /// vCPU `vcpu` submitted the slot page with guest page-frame number `pfn` (GPA >> 12). Must
    /// return without waiting for the request.
    fn submit(&self, vcpu: u32, pfn: u32);
}

/// The asynchronous offload doorbell.
pub struct AsyncDoorbell<H: AsyncHandler> {
    handler: H,
}

impl<H: AsyncHandler> AsyncDoorbell<H> {
    /// The port this device occupies.
    pub const PORT: u16 = port::OFFLOAD_ASYNC;

    /// A doorbell that hands submissions to `handler`.
    pub fn new(handler: H) -> Self {
        AsyncDoorbell { handler }
    }
}

impl<H: AsyncHandler> PortDevice for AsyncDoorbell<H> {
    fn write(&self, vcpu: u32, _port: u16, data: &[u8]) -> PortAction {
        self.handler.submit(vcpu, value(data));
        PortAction::Continue
    }
}

/// Interrupts offloaded calls the LWK has a signal for (`port::INTERRUPT_SYNC` and
/// `port::INTERRUPT_ASYNC`).
pub trait InterruptHandler: Send + Sync {
    /// Interrupt the synchronous call of vCPU `vcpu`, if one is in flight.
    fn interrupt_sync(&self, vcpu: u32);
    /// Interrupt the asynchronous call of the slot page with page-frame number `pfn`, if one
    /// was submitted and has not completed.
    fn interrupt_async(&self, pfn: u32);
}

/// The two interruption ports (registered as one range of two ports).
pub struct InterruptPorts<H: InterruptHandler> {
    handler: H,
}

impl<H: InterruptHandler> InterruptPorts<H> {
    /// The first port (`port::INTERRUPT_SYNC`; `INTERRUPT_ASYNC` follows it).
    pub const PORT: u16 = port::INTERRUPT_SYNC;

    /// Ports that call `handler`.
    pub fn new(handler: H) -> Self {
        InterruptPorts { handler }
    }
}

const _: () = assert!(port::INTERRUPT_ASYNC == port::INTERRUPT_SYNC + 1);

impl<H: InterruptHandler> PortDevice for InterruptPorts<H> {
    fn write(&self, _vcpu: u32, port: u16, data: &[u8]) -> PortAction {
        if port == port::INTERRUPT_SYNC {
            self.handler.interrupt_sync(value(data));
        } else {
            self.handler.interrupt_async(value(data));
        }
        PortAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<u32>>>);
    impl DoorbellHandler for Recorder {
        fn ring(&self, vcpu: u32) {
            self.0.lock().unwrap().push(vcpu);
        }
    }
    impl AsyncHandler for Recorder {
        fn submit(&self, vcpu: u32, pfn: u32) {
            self.0.lock().unwrap().push(vcpu << 24 | pfn);
        }
    }

    #[test]
    fn dispatch_by_port() {
        let rung = Arc::new(Mutex::new(Vec::new()));
        let mut bus = PortBus::new();
        bus.register(ExitPort::PORT, 1, Box::new(ExitPort)).unwrap();
        bus.register(
            Doorbell::<Recorder>::PORT,
            1,
            Box::new(Doorbell::new(Recorder(rung.clone()))),
        )
        .unwrap();
        bus.register(
            AsyncDoorbell::<Recorder>::PORT,
            1,
            Box::new(AsyncDoorbell::new(Recorder(rung.clone()))),
        )
        .unwrap();
        // The doorbell rings the bridge of the vCPU that wrote, whatever id it wrote.
        assert_eq!(
            bus.write(3, port::OFFLOAD, &3u32.to_le_bytes()),
            Some(PortAction::Continue)
        );
        assert_eq!(
            bus.write(4, port::OFFLOAD, &9u32.to_le_bytes()),
            Some(PortAction::Continue)
        );
        // The submitting vCPU comes from the exit, the page from the value (2 bytes written:
        // zero-extended).
        assert_eq!(
            bus.write(5, port::OFFLOAD_ASYNC, &[0x34, 0x12]),
            Some(PortAction::Continue)
        );
        assert_eq!(bus.write(0, port::EXIT, &[0]), Some(PortAction::Stop));
        assert_eq!(bus.write(0, 0x3f8, b"x"), None);
        let mut byte = [0u8; 1];
        assert_eq!(
            bus.read(0, port::EXIT, &mut byte),
            Some(PortAction::Continue)
        );
        assert_eq!(byte, [0xff]);
        assert_eq!(*rung.lock().unwrap(), vec![3, 4, 5 << 24 | 0x1234]);
    }

    #[test]
    fn overlapping_ranges_are_refused() {
        let mut bus = PortBus::new();
        bus.register(0x100, 8, Box::new(ExitPort)).unwrap();
        assert!(bus.register(0x107, 1, Box::new(ExitPort)).is_err());
        assert!(bus.register(0xfc, 4, Box::new(ExitPort)).is_ok());
        assert!(bus.register(0xffff, 1, Box::new(ExitPort)).is_ok());
        assert!(bus.register(0x200, 0, Box::new(ExitPort)).is_err());
    }
}
