//! `lwk-devices`: what the guest can touch besides RAM — port-I/O devices on a [`PortBus`].
//!
//! Devices register their port ranges on the bus; the VMM's exit loop only asks the bus to
//! dispatch an access (no port numbers in the loop, STYLE.md practice 11). The devices here:
//! - [`ExitPort`]: the guest announces the end of the job;
//! - [`StartAps`]: vCPU 0 lets the other vCPUs start;
//! - [`Doorbell`]: the guest rings the offload bridge of a vCPU (`exit` transport); the work is
//!   done by a [`DoorbellHandler`] the VMM provides (the offload servicer).
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

/// A device on the I/O-port bus.
pub trait PortDevice: Send {
    /// A guest write of `data` (1, 2 or 4 bytes) to `port`.
    fn write(&mut self, port: u16, data: &[u8]) -> PortAction;
    /// A guest read of `data.len()` bytes from `port`; the default reads all ones, like an
    /// open bus.
    fn read(&mut self, _port: u16, data: &mut [u8]) -> PortAction {
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

    fn find(&mut self, port: u16) -> Option<&mut Slot> {
        self.slots
            .iter_mut()
            .find(|s| port >= s.base && u32::from(port) < u32::from(s.base) + u32::from(s.len))
    }

    /// Dispatches a write; `None` if no device owns `port`.
    pub fn write(&mut self, port: u16, data: &[u8]) -> Option<PortAction> {
        self.find(port).map(|s| s.device.write(port, data))
    }

    /// Dispatches a read; `None` if no device owns `port`.
    pub fn read(&mut self, port: u16, data: &mut [u8]) -> Option<PortAction> {
        self.find(port).map(|s| s.device.read(port, data))
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
    fn write(&mut self, _port: u16, _data: &[u8]) -> PortAction {
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
    fn write(&mut self, _port: u16, _data: &[u8]) -> PortAction {
        self.gate.open();
        PortAction::Continue
    }
}

/// Serves a rung doorbell: the request of vCPU `vcpu` is in its bridge page.
pub trait DoorbellHandler: Send {
    /// Handles the request synchronously (the vCPU waits in its exit).
    fn ring(&mut self, vcpu: u32);
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

impl<H: DoorbellHandler> PortDevice for Doorbell<H> {
    fn write(&mut self, _port: u16, data: &[u8]) -> PortAction {
        let mut raw = [0u8; 4];
        for (dst, src) in raw.iter_mut().zip(data) {
            *dst = *src;
        }
        self.handler.ring(u32::from_le_bytes(raw));
        PortAction::Continue
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    struct Recorder(Arc<Mutex<Vec<u32>>>);
    impl DoorbellHandler for Recorder {
        fn ring(&mut self, vcpu: u32) {
            self.0.lock().unwrap().push(vcpu);
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
        assert_eq!(
            bus.write(port::OFFLOAD, &3u32.to_le_bytes()),
            Some(PortAction::Continue)
        );
        assert_eq!(bus.write(port::EXIT, &[0]), Some(PortAction::Stop));
        assert_eq!(bus.write(0x3f8, b"x"), None);
        let mut byte = [0u8; 1];
        assert_eq!(bus.read(port::EXIT, &mut byte), Some(PortAction::Continue));
        assert_eq!(byte, [0xff]);
        assert_eq!(*rung.lock().unwrap(), vec![3]);
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
