//! Feature negotiation (virtio 1.2, 3.1.1), done here rather than by virtio-drivers' devices so
//! that each driver picks its own features and knows which ones the device did not offer.

use virtio_drivers::transport::{DeviceStatus, Transport};
use virtio_drivers::{Error, PAGE_SIZE};

/// `VIRTIO_F_VERSION_1`: a device of the virtio 1.0 interface (not legacy). A driver must accept
/// it when it is offered.
pub const VERSION_1: u64 = 1 << 32;

/// What a device offered and what the driver accepted of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Feature bits the device offered.
    pub offered: u64,
    /// Feature bits both sides use.
    pub accepted: u64,
}

impl Features {
    /// Whether feature `bit` (a mask) was negotiated.
    pub const fn has(&self, bit: u64) -> bool {
        self.accepted & bit == bit
    }
}

/// Reset the device, acknowledge it, and accept the features of `wanted` (plus
/// [`VERSION_1`]) that it offers. `Err(Unsupported)` if the device refuses them.
pub fn negotiate<T: Transport>(t: &mut T, wanted: u64) -> Result<Features, Error> {
    negotiate_with(t, |offered| offered & wanted)
}

/// [`negotiate`], with `choose` picking the features to accept from those offered (for
/// features that only make sense together); [`VERSION_1`] is accepted whenever offered.
pub fn negotiate_with<T: Transport>(t: &mut T, choose: impl FnOnce(u64) -> u64) -> Result<Features, Error> {
    t.set_status(DeviceStatus::empty());
    t.set_status(DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER);
    let offered = t.read_device_features();
    let accepted = offered & (choose(offered) | VERSION_1);
    t.write_driver_features(accepted);
    let ok = DeviceStatus::ACKNOWLEDGE | DeviceStatus::DRIVER | DeviceStatus::FEATURES_OK;
    t.set_status(ok);
    if !t.get_status().contains(DeviceStatus::FEATURES_OK) {
        t.set_status(DeviceStatus::FAILED);
        return Err(Error::Unsupported);
    }
    t.set_guest_page_size(PAGE_SIZE as u32);
    Ok(Features { offered, accepted })
}

/// Tell the device the driver is ready (after its queues are set up).
pub fn ready<T: Transport>(t: &mut T) {
    t.finish_init();
}
