//! Cutting a TSO/GSO super-frame into the wire-sized TCP segments a NIC would send.

use super::ETH;

pub(super) fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

pub(super) fn put16(b: &mut [u8], at: usize, v: u16) {
    b[at..at + 2].copy_from_slice(&v.to_be_bytes());
}

/// The ones' complement sum of `data` added to `acc`, not yet folded.
pub(super) fn sum16(data: &[u8], mut acc: u64) -> u64 {
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        acc += u64::from(u16::from_be_bytes([w[0], w[1]]));
    }
    if let [last] = words.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

pub(super) fn fold(mut acc: u64) -> u16 {
    while acc >> 16 != 0 {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    !(acc as u16)
}

pub(super) const TCP_FIN: u8 = 0x01;
pub(super) const TCP_PSH: u8 = 0x08;
pub(super) const TCP_CWR: u8 = 0x80;

/// Cut an IPv4 or IPv6 TCP frame longer than `mtu` IP bytes into wire-sized segments, as a
/// NIC's TSO would: the same headers, payload in `mtu - headers` pieces, sequence numbers,
/// lengths, IPv4 ids and checksums rewritten, FIN and PSH on the last piece only, CWR on the
/// first. `None` for anything else (not TCP, IPv4 fragments or options it cannot tell,
/// IPv6 extension headers, VLAN tags).
pub(super) fn segment_tcp(frame: &[u8], mtu: usize) -> Option<Vec<Vec<u8>>> {
    if frame.len() < ETH + 40 {
        return None;
    }
    let (ip_len, v6) = match be16(frame, 12) {
        0x0800 => {
            let ihl = usize::from(frame[ETH] & 0x0f) * 4;
            let fragment = be16(frame, ETH + 6) & 0x3fff != 0;
            if frame[ETH] >> 4 != 4 || ihl < 20 || frame[ETH + 9] != 6 || fragment {
                return None;
            }
            (ihl, false)
        }
        0x86dd if frame[ETH + 6] == 6 => (40, true),
        _ => return None,
    };
    let tcp = ETH + ip_len;
    let doff = usize::from(*frame.get(tcp + 12)? >> 4) * 4;
    let payload_at = tcp + doff;
    let ip_total =
        if v6 { 40 + usize::from(be16(frame, ETH + 4)) } else { usize::from(be16(frame, ETH + 2)) };
    // A TSO super-frame may carry a length of 0 (more than 64 KiB): the frame's end then.
    let end = if ip_total <= ip_len { frame.len() } else { (ETH + ip_total).min(frame.len()) };
    if doff < 20 || payload_at >= end {
        return None;
    }
    let mss = mtu.checked_sub(ip_len + doff).filter(|&m| m > 0)?;
    let payload = &frame[payload_at..end];
    let seq = u32::from_be_bytes(frame[tcp + 4..tcp + 8].try_into().ok()?);
    let flags = frame[tcp + 13];
    let pieces = payload.len().div_ceil(mss);
    let segments = payload
        .chunks(mss)
        .enumerate()
        .map(|(i, chunk)| {
            let mut s = Vec::with_capacity(payload_at + chunk.len());
            s.extend_from_slice(&frame[..payload_at]);
            s.extend_from_slice(chunk);
            let tcp_len = doff + chunk.len();
            let pseudo = if v6 {
                put16(&mut s, ETH + 4, tcp_len as u16);
                sum16(&s[ETH + 8..ETH + 40], 6 + tcp_len as u64)
            } else {
                put16(&mut s, ETH + 2, (ip_len + tcp_len) as u16);
                let id = be16(&s, ETH + 4).wrapping_add(i as u16);
                put16(&mut s, ETH + 4, id);
                put16(&mut s, ETH + 10, 0);
                let c = fold(sum16(&s[ETH..tcp], 0));
                put16(&mut s, ETH + 10, c);
                sum16(&s[ETH + 12..ETH + 20], 6 + tcp_len as u64)
            };
            s[tcp + 4..tcp + 8].copy_from_slice(&seq.wrapping_add((i * mss) as u32).to_be_bytes());
            let mut f = flags;
            if i + 1 < pieces {
                f &= !(TCP_FIN | TCP_PSH);
            }
            if i > 0 {
                f &= !TCP_CWR;
            }
            s[tcp + 13] = f;
            put16(&mut s, tcp + 16, 0);
            let c = fold(sum16(&s[tcp..], pseudo));
            put16(&mut s, tcp + 16, c);
            s
        })
        .collect();
    Some(segments)
}
