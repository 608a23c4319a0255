// Heads up! Before working on this file you should read, at least,
// the parts of RFC 1122 that discuss ARP.

use heapless::LinearMap;

use crate::config::IFACE_NEIGHBOR_CACHE_COUNT;
use crate::time::{Duration, Instant};
use crate::wire::{HardwareAddress, IpAddress};

/// A cached neighbor.
///
/// A neighbor mapping translates from a protocol address to a hardware address,
/// and contains the timestamp past which the mapping should be discarded.
#[derive(Debug, Clone, Copy)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub struct Neighbor {
    hardware_addr: HardwareAddress,
    expires_at: Instant,
    /// Learned from an answer to our own request, or seen sending us traffic: such an entry
    /// is never evicted to make room for one that is neither (a flood of ARP requests from
    /// made-up addresses must not push live peers out of the cache).
    confirmed: bool,
}

/// An answer to a neighbor cache lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "defmt", derive(defmt::Format))]
pub(crate) enum Answer {
    /// The neighbor address is in the cache and not expired.
    Found(HardwareAddress),
    /// The neighbor address is not in the cache, or has expired.
    NotFound,
    /// The neighbor address is not in the cache, or has expired,
    /// and a lookup has been made recently.
    RateLimited,
}

impl Answer {
    /// Returns whether a valid address was found.
    pub(crate) fn found(&self) -> bool {
        match self {
            Answer::Found(_) => true,
            _ => false,
        }
    }
}

/// A neighbor cache backed by a map.
#[derive(Debug)]
pub struct Cache {
    storage: LinearMap<IpAddress, Neighbor, IFACE_NEIGHBOR_CACHE_COUNT>,
    /// Addresses asked for, and when: one request per address per `SILENT_TIME`, so that
    /// requests for hosts that never answer do not hold back requests for others.
    asked: LinearMap<IpAddress, Instant, IFACE_NEIGHBOR_CACHE_COUNT>,
}

impl Cache {
    /// Minimum delay between discovery requests, in milliseconds.
    pub(crate) const SILENT_TIME: Duration = Duration::from_millis(1_000);

    /// Neighbor entry lifetime, in milliseconds.
    pub(crate) const ENTRY_LIFETIME: Duration = Duration::from_millis(60_000);

    /// Create a cache.
    pub fn new() -> Self {
        Self {
            storage: LinearMap::new(),
            asked: LinearMap::new(),
        }
    }

    pub fn reset_expiry_if_existing(
        &mut self,
        protocol_addr: IpAddress,
        source_hardware_addr: HardwareAddress,
        timestamp: Instant,
    ) {
        if let Some(Neighbor {
            expires_at,
            hardware_addr,
            confirmed,
        }) = self.storage.get_mut(&protocol_addr)
            && source_hardware_addr == *hardware_addr
        {
            *expires_at = timestamp + Self::ENTRY_LIFETIME;
            *confirmed = true;
        }
    }

    pub fn fill(
        &mut self,
        protocol_addr: IpAddress,
        hardware_addr: HardwareAddress,
        timestamp: Instant,
    ) {
        debug_assert!(protocol_addr.is_unicast());
        debug_assert!(hardware_addr.is_unicast());

        let expires_at = timestamp + Self::ENTRY_LIFETIME;
        self.fill_with_expiration(protocol_addr, hardware_addr, expires_at);
    }

    /// Fill from what a neighbour said unasked (an ARP request, an unsolicited reply): into a
    /// free slot, over an unconfirmed entry, or over the entry for the same address, but never
    /// over a confirmed entry for another address.
    pub fn fill_unsolicited(
        &mut self,
        protocol_addr: IpAddress,
        hardware_addr: HardwareAddress,
        timestamp: Instant,
    ) {
        if self.was_asked(&protocol_addr, timestamp) {
            return self.fill(protocol_addr, hardware_addr, timestamp);
        }
        let expires_at = timestamp + Self::ENTRY_LIFETIME;
        self.insert(protocol_addr, hardware_addr, expires_at, false);
    }

    fn was_asked(&self, protocol_addr: &IpAddress, timestamp: Instant) -> bool {
        self.asked
            .get(protocol_addr)
            .is_some_and(|&at| timestamp < at + Self::SILENT_TIME)
    }

    pub fn fill_with_expiration(
        &mut self,
        protocol_addr: IpAddress,
        hardware_addr: HardwareAddress,
        expires_at: Instant,
    ) {
        debug_assert!(protocol_addr.is_unicast());
        debug_assert!(hardware_addr.is_unicast());
        self.insert(protocol_addr, hardware_addr, expires_at, true);
    }

    fn insert(
        &mut self,
        protocol_addr: IpAddress,
        hardware_addr: HardwareAddress,
        expires_at: Instant,
        confirmed: bool,
    ) {
        let _ = self.asked.remove(&protocol_addr);
        if let Some(old) = self.storage.get_mut(&protocol_addr) {
            if old.hardware_addr != hardware_addr {
                net_trace!(
                    "replaced {} => {} (was {})",
                    protocol_addr,
                    hardware_addr,
                    old.hardware_addr
                );
            }
            *old = Neighbor {
                hardware_addr,
                expires_at,
                confirmed: confirmed || old.confirmed,
            };
            return;
        }
        let neighbor = Neighbor {
            hardware_addr,
            expires_at,
            confirmed,
        };
        if self.storage.len() == self.storage.capacity() {
            // The cache is full: evict the entry that expires first among the unconfirmed
            // ones, or among all of them if the new entry is confirmed.
            let victim = self
                .storage
                .iter()
                .filter(|(_, n)| confirmed || !n.confirmed)
                .min_by_key(|(_, n)| (n.confirmed, n.expires_at))
                .map(|(addr, _)| *addr);
            let Some(victim) = victim else {
                net_trace!(
                    "not filling {} => {}: the cache is full of confirmed neighbors",
                    protocol_addr,
                    hardware_addr
                );
                return;
            };
            let _old = self.storage.remove(&victim);
            net_trace!("evicted {}", victim);
        }
        let _ = self.storage.insert(protocol_addr, neighbor);
        net_trace!("filled {} => {}", protocol_addr, hardware_addr);
    }

    pub(crate) fn lookup(&self, protocol_addr: &IpAddress, timestamp: Instant) -> Answer {
        assert!(protocol_addr.is_unicast());

        if let Some(&Neighbor {
            expires_at,
            hardware_addr,
            ..
        }) = self.storage.get(protocol_addr)
            && timestamp < expires_at
        {
            return Answer::Found(hardware_addr);
        }

        if self.was_asked(protocol_addr, timestamp) {
            Answer::RateLimited
        } else {
            Answer::NotFound
        }
    }

    /// A request for `protocol_addr` was sent: no other for `SILENT_TIME`. Requests for other
    /// addresses are not held back (the oldest request is forgotten when the table is full).
    pub(crate) fn limit_rate(&mut self, protocol_addr: IpAddress, timestamp: Instant) {
        if self.asked.len() == self.asked.capacity() && !self.asked.contains_key(&protocol_addr) {
            let oldest = self
                .asked
                .iter()
                .min_by_key(|(_, at)| **at)
                .map(|(addr, _)| *addr);
            if let Some(oldest) = oldest {
                let _ = self.asked.remove(&oldest);
            }
        }
        let _ = self.asked.insert(protocol_addr, timestamp);
    }

    pub(crate) fn flush(&mut self) {
        self.storage.clear();
        self.asked.clear();
    }
}

#[cfg(feature = "medium-ethernet")]
#[cfg(test)]
mod test {
    use super::*;
    #[cfg(all(feature = "proto-ipv4", not(feature = "proto-ipv6")))]
    use crate::wire::ipv4::test::{MOCK_IP_ADDR_1, MOCK_IP_ADDR_2, MOCK_IP_ADDR_3, MOCK_IP_ADDR_4};
    #[cfg(feature = "proto-ipv6")]
    use crate::wire::ipv6::test::{MOCK_IP_ADDR_1, MOCK_IP_ADDR_2, MOCK_IP_ADDR_3, MOCK_IP_ADDR_4};

    use crate::wire::EthernetAddress;

    const HADDR_A: HardwareAddress = HardwareAddress::Ethernet(EthernetAddress([0, 0, 0, 0, 0, 1]));
    const HADDR_B: HardwareAddress = HardwareAddress::Ethernet(EthernetAddress([0, 0, 0, 0, 0, 2]));
    const HADDR_C: HardwareAddress = HardwareAddress::Ethernet(EthernetAddress([0, 0, 0, 0, 0, 3]));
    const HADDR_D: HardwareAddress = HardwareAddress::Ethernet(EthernetAddress([0, 0, 0, 0, 0, 4]));

    #[test]
    fn test_fill() {
        let mut cache = Cache::new();

        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0))
                .found()
        );
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(0))
                .found()
        );

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::Found(HADDR_A)
        );
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(0))
                .found()
        );
        assert!(
            !cache
                .lookup(
                    &MOCK_IP_ADDR_1.into(),
                    Instant::from_millis(0) + Cache::ENTRY_LIFETIME * 2
                )
                .found(),
        );

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(0));
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(0))
                .found()
        );
    }

    #[test]
    fn test_expire() {
        let mut cache = Cache::new();

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::Found(HADDR_A)
        );
        assert!(
            !cache
                .lookup(
                    &MOCK_IP_ADDR_1.into(),
                    Instant::from_millis(0) + Cache::ENTRY_LIFETIME * 2
                )
                .found(),
        );
    }

    #[test]
    fn test_replace() {
        let mut cache = Cache::new();

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::Found(HADDR_A)
        );
        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_B, Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::Found(HADDR_B)
        );
    }

    #[test]
    fn test_evict() {
        let mut cache = Cache::new();

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(100));
        cache.fill(MOCK_IP_ADDR_2.into(), HADDR_B, Instant::from_millis(50));
        cache.fill(MOCK_IP_ADDR_3.into(), HADDR_C, Instant::from_millis(200));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(1000)),
            Answer::Found(HADDR_B)
        );
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_4.into(), Instant::from_millis(1000))
                .found()
        );

        cache.fill(MOCK_IP_ADDR_4.into(), HADDR_D, Instant::from_millis(300));
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(1000))
                .found()
        );
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_4.into(), Instant::from_millis(1000)),
            Answer::Found(HADDR_D)
        );
    }

    #[test]
    fn unsolicited_fills_never_evict_confirmed_neighbors() {
        // Morgana: a flood of ARP requests from made-up addresses.
        let mut cache = Cache::new();
        let live = IpAddress::Ipv4(crate::wire::Ipv4Address::new(10, 0, 0, 1));
        cache.fill(live, HADDR_A, Instant::from_millis(0));
        for i in 0..1000u32 {
            let fake = IpAddress::Ipv4(crate::wire::Ipv4Address::from_bits(0x0a01_0000 + i));
            cache.fill_unsolicited(fake, HADDR_B, Instant::from_millis(1 + i as i64));
        }
        assert_eq!(
            cache.lookup(&live, Instant::from_millis(2000)),
            Answer::Found(HADDR_A)
        );
        // An unsolicited fill does update the entry of its own address.
        cache.fill_unsolicited(live, HADDR_C, Instant::from_millis(2000));
        assert_eq!(
            cache.lookup(&live, Instant::from_millis(2000)),
            Answer::Found(HADDR_C)
        );
    }

    #[test]
    fn traffic_confirms_an_unsolicited_entry() {
        let mut cache = Cache::new();
        let peer = IpAddress::Ipv4(crate::wire::Ipv4Address::new(10, 0, 0, 1));
        cache.fill_unsolicited(peer, HADDR_A, Instant::from_millis(0));
        cache.reset_expiry_if_existing(peer, HADDR_A, Instant::from_millis(10));
        for i in 0..100u32 {
            let fake = IpAddress::Ipv4(crate::wire::Ipv4Address::from_bits(0x0a01_0000 + i));
            cache.fill_unsolicited(fake, HADDR_B, Instant::from_millis(20));
        }
        assert_eq!(
            cache.lookup(&peer, Instant::from_millis(30)),
            Answer::Found(HADDR_A)
        );
    }

    #[test]
    fn test_hush() {
        let mut cache = Cache::new();

        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::NotFound
        );

        cache.limit_rate(MOCK_IP_ADDR_1.into(), Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(100)),
            Answer::RateLimited
        );
        // Morgana: the limit is per address.
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(100)),
            Answer::NotFound
        );
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(2000)),
            Answer::NotFound
        );
    }

    #[test]
    fn test_flush() {
        let mut cache = Cache::new();

        cache.fill(MOCK_IP_ADDR_1.into(), HADDR_A, Instant::from_millis(0));
        assert_eq!(
            cache.lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0)),
            Answer::Found(HADDR_A)
        );
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_2.into(), Instant::from_millis(0))
                .found()
        );

        cache.flush();
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0))
                .found()
        );
        assert!(
            !cache
                .lookup(&MOCK_IP_ADDR_1.into(), Instant::from_millis(0))
                .found()
        );
    }
}
