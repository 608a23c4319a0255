//! SYN cookies (RFC 4987 section 3.6): the initial sequence number of a SYN|ACK encodes the
//! connection, so a listening socket answers a SYN without keeping any state, and the ACK
//! that completes the handshake proves the peer received the SYN|ACK.
//!
//! Layout of the 32-bit cookie, as in Linux's `net/ipv4/syncookies.c` in spirit:
//!
//! ```text
//!  31                              8 7         3 2     0
//! +---------------------------------+-----------+-------+
//! | keyed hash (24 bits)            | period    | MSS   |
//! +---------------------------------+-----------+-------+
//! ```
//!
//! The hash covers both endpoints, the peer's initial sequence number, the time period and
//! the MSS index, keyed by the interface's secret; the period is the low 5 bits of a
//! 64-second counter, and a cookie is accepted for the current and the previous period.

use core::hash::Hasher;

use crate::time::Instant;
use crate::wire::{IpAddress, TcpSeqNumber};

/// MSS values a cookie can encode; the peer's is rounded down to one of them.
const MSS_TABLE: [u16; 8] = [88, 536, 1220, 1300, 1380, 1440, 1460, 8960];

/// Length of a cookie period, in seconds.
const PERIOD_SECS: u64 = 64;

/// The two endpoints of the connection a cookie is for, as seen by the listening side.
#[derive(Debug, Clone, Copy)]
pub(super) struct Endpoints {
    pub local: IpAddress,
    pub local_port: u16,
    pub remote: IpAddress,
    pub remote_port: u16,
}

fn period(now: Instant) -> u32 {
    (now.total_millis().max(0) as u64 / 1000 / PERIOD_SECS) as u32
}

fn write_addr(h: &mut impl Hasher, addr: &IpAddress) {
    match addr {
        #[cfg(feature = "proto-ipv4")]
        IpAddress::Ipv4(a) => h.write(&a.octets()),
        #[cfg(feature = "proto-ipv6")]
        IpAddress::Ipv6(a) => h.write(&a.octets()),
    }
}

fn hash(
    key: [u64; 2],
    ends: &Endpoints,
    peer_isn: TcpSeqNumber,
    period: u32,
    mss_index: u8,
) -> u32 {
    // SipHash-2-4: a keyed hash, so that the cookies of one peer say nothing about another's.
    #[allow(deprecated)]
    let mut h = core::hash::SipHasher::new_with_keys(key[0], key[1]);
    write_addr(&mut h, &ends.local);
    write_addr(&mut h, &ends.remote);
    h.write_u16(ends.local_port);
    h.write_u16(ends.remote_port);
    h.write_i32(peer_isn.0);
    h.write_u32(period);
    h.write_u8(mss_index);
    h.finish() as u32
}

/// The initial sequence number of a SYN|ACK answering a SYN with sequence number `peer_isn`
/// and maximum segment size `peer_mss`.
pub(super) fn encode(
    key: [u64; 2],
    now: Instant,
    ends: &Endpoints,
    peer_isn: TcpSeqNumber,
    peer_mss: usize,
) -> TcpSeqNumber {
    let mss_index = MSS_TABLE
        .iter()
        .rposition(|&m| usize::from(m) <= peer_mss)
        .unwrap_or(0) as u8;
    let period = period(now);
    let h = hash(key, ends, peer_isn, period, mss_index);
    TcpSeqNumber(((h & !0xff) | ((period & 0x1f) << 3) | u32::from(mss_index)) as i32)
}

/// If `cookie` is one that [`encode`] gave for these endpoints and `peer_isn` within the last
/// two periods, the MSS it encodes.
pub(super) fn decode(
    key: [u64; 2],
    now: Instant,
    ends: &Endpoints,
    peer_isn: TcpSeqNumber,
    cookie: TcpSeqNumber,
) -> Option<usize> {
    let cookie = cookie.0 as u32;
    let mss_index = (cookie & 0x7) as u8;
    let low = (cookie >> 3) & 0x1f;
    let current = period(now);
    [current, current.wrapping_sub(1)]
        .into_iter()
        .filter(|p| p & 0x1f == low)
        .any(|p| hash(key, ends, peer_isn, p, mss_index) & !0xff == cookie & !0xff)
        .then(|| usize::from(MSS_TABLE[usize::from(mss_index)]))
}

#[cfg(all(test, feature = "proto-ipv4"))]
mod test {
    use super::*;
    use crate::wire::Ipv4Address;

    const KEY: [u64; 2] = [0x0123_4567_89ab_cdef, 0xfedc_ba98_7654_3210];

    fn ends(remote_port: u16) -> Endpoints {
        Endpoints {
            local: IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 2)),
            local_port: 80,
            remote: IpAddress::Ipv4(Ipv4Address::new(10, 0, 0, 1)),
            remote_port,
        }
    }

    #[test]
    fn a_cookie_decodes_to_the_mss_rounded_down() {
        let now = Instant::from_secs(1000);
        let c = encode(KEY, now, &ends(4000), TcpSeqNumber(77), 1460);
        assert_eq!(
            decode(KEY, now, &ends(4000), TcpSeqNumber(77), c),
            Some(1460)
        );
        let c = encode(KEY, now, &ends(4000), TcpSeqNumber(77), 1400);
        assert_eq!(
            decode(KEY, now, &ends(4000), TcpSeqNumber(77), c),
            Some(1380)
        );
        let c = encode(KEY, now, &ends(4000), TcpSeqNumber(77), 60);
        assert_eq!(decode(KEY, now, &ends(4000), TcpSeqNumber(77), c), Some(88));
    }

    #[test]
    fn a_cookie_is_bound_to_its_endpoints_sequence_number_and_key() {
        let now = Instant::from_secs(1000);
        let c = encode(KEY, now, &ends(4000), TcpSeqNumber(77), 1460);
        assert_eq!(decode(KEY, now, &ends(4001), TcpSeqNumber(77), c), None);
        assert_eq!(decode(KEY, now, &ends(4000), TcpSeqNumber(78), c), None);
        assert_eq!(decode([1, 2], now, &ends(4000), TcpSeqNumber(77), c), None);
        assert_eq!(decode(KEY, now, &ends(4000), TcpSeqNumber(77), c + 1), None);
    }

    #[test]
    fn a_cookie_expires_after_two_periods() {
        let sent = Instant::from_secs(64 * 100 + 63);
        let c = encode(KEY, sent, &ends(4000), TcpSeqNumber(77), 1460);
        let later = |s: u64| Instant::from_secs(64 * 100 + 63 + s as i64);
        assert!(decode(KEY, later(1), &ends(4000), TcpSeqNumber(77), c).is_some());
        assert!(decode(KEY, later(64), &ends(4000), TcpSeqNumber(77), c).is_some());
        assert!(decode(KEY, later(65), &ends(4000), TcpSeqNumber(77), c).is_none());
    }

    #[test]
    fn guessed_cookies_are_refused() {
        let now = Instant::from_secs(1000);
        let accepted = (0..100_000)
            .filter(|i| {
                decode(
                    KEY,
                    now,
                    &ends(4000),
                    TcpSeqNumber(77),
                    TcpSeqNumber(i * 7919),
                )
                .is_some()
            })
            .count();
        assert_eq!(accepted, 0);
    }
}
