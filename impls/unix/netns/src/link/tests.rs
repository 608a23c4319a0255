//! The emulator's decisions without devices: drops, the shaper, the delay line, segmentation.

use super::segment::*;
use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn frame(len: usize) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[12] = 0x08;
    f[13] = 0x06; // ARP: not TCP, so an oversized one is counted, not cut.
    f
}

fn drops(seed: u64) -> Vec<bool> {
    let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, seed);
    (0..1000)
        .map(|_| {
            let before = s.stats.lost;
            s.admit(Duration::ZERO, &frame(100));
            s.stats.lost != before
        })
        .collect()
}

#[test]
fn the_same_seed_drops_the_same_frames_and_the_rate_is_the_one_asked_for() {
    assert_eq!(drops(7), drops(7));
    assert_ne!(drops(7), drops(8));
    let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, 1);
    for _ in 0..100_000 {
        s.admit(Duration::ZERO, &frame(60));
    }
    // 10 % of 100 000: 10 000 ± 95 (one standard deviation); ± 600 is over 6.
    assert!((9_400..=10_600).contains(&s.stats.lost), "{:?}", s.stats);
    assert_eq!(s.stats.lost + s.held.len() as u64, 100_000);
}

#[test]
fn delay_holds_a_frame_exactly_that_long_and_jitter_keeps_order() {
    let mut s = Shaper::new(Impairment::default().delay(ms(20)).jitter(ms(5)), 1500, 3);
    for i in 0..100u8 {
        let mut f = frame(60);
        f[20] = i;
        s.admit(ms(u64::from(i) / 10), &f);
    }
    assert!(s.pop_due(ms(19)).is_none(), "released before its delay");
    let mut order = Vec::new();
    let mut now = ms(19);
    while !s.held.is_empty() {
        now += Duration::from_micros(100);
        while let Some(f) = s.pop_due(now) {
            order.push(f[20]);
        }
    }
    assert_eq!(order, (0..100).collect::<Vec<_>>());
    assert!(now <= ms(9 + 20 + 5) + ms(1), "held too long: {now:?}");
}

#[test]
fn reordering_lets_later_frames_overtake() {
    let mut s = Shaper::new(Impairment::default().reorder(0.2, ms(3)), 1500, 5);
    for i in 0..200u8 {
        let mut f = frame(60);
        f[20] = i;
        s.admit(Duration::from_micros(u64::from(i) * 100), &f);
    }
    let mut order = Vec::new();
    while let Some(f) = s.pop_due(ms(1000)) {
        order.push(f[20]);
    }
    assert_eq!(order.len(), 200);
    assert!(order.windows(2).any(|w| w[0] > w[1]), "nothing reordered");
    assert!(s.stats.reordered > 10 && s.stats.reordered < 80, "{:?}", s.stats);
}

#[test]
fn the_rate_limit_spaces_frames_and_a_full_queue_drops_at_the_tail() {
    // 12 Mbit/s: a 1500-byte frame takes 1 ms on the wire.
    let mut s = Shaper::new(Impairment::default().rate(12_000_000, 0).queue(15_000), 1500, 0);
    for _ in 0..100 {
        s.admit(Duration::ZERO, &frame(1500));
    }
    // 10 frames' worth may wait, so 11 or 12 get through a burst of 100 at once.
    let kept = s.held.len();
    assert!((10..=12).contains(&kept), "{kept} kept, {:?}", s.stats);
    assert_eq!(s.stats.queue_dropped as usize, 100 - kept);
    let mut times = Vec::new();
    let mut now = Duration::ZERO;
    while !s.held.is_empty() {
        now += Duration::from_micros(10);
        while s.pop_due(now).is_some() {
            times.push(now);
        }
    }
    assert!(times.windows(2).all(|w| w[1] - w[0] >= Duration::from_micros(990)), "{times:?}");
}

fn tcp_superframe(v6: bool, payload: usize) -> Vec<u8> {
    let ip_len = if v6 { 40 } else { 20 };
    let mut f = vec![0u8; ETH + ip_len + 20 + payload];
    if v6 {
        f[12..14].copy_from_slice(&[0x86, 0xdd]);
        f[ETH] = 0x60;
        put16(&mut f, ETH + 4, (20 + payload) as u16);
        f[ETH + 6] = 6;
        f[ETH + 7] = 64;
        f[ETH + 23] = 1;
        f[ETH + 39] = 2;
    } else {
        f[12..14].copy_from_slice(&[0x08, 0x00]);
        f[ETH] = 0x45;
        put16(&mut f, ETH + 2, (20 + 20 + payload) as u16);
        put16(&mut f, ETH + 4, 1000);
        f[ETH + 6] = 0x40; // DF
        f[ETH + 8] = 64;
        f[ETH + 9] = 6;
        f[ETH + 12..ETH + 20].copy_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    }
    let tcp = ETH + ip_len;
    f[tcp + 4..tcp + 8].copy_from_slice(&0xffff_f000u32.to_be_bytes());
    f[tcp + 12] = 5 << 4;
    f[tcp + 13] = 0x10 | TCP_PSH | TCP_FIN | TCP_CWR;
    for (i, b) in f[tcp + 20..].iter_mut().enumerate() {
        *b = (i * 7) as u8;
    }
    f
}

#[test]
fn a_tcp_superframe_is_cut_into_valid_wire_segments_each_diced_on_its_own() {
    for v6 in [false, true] {
        let big = tcp_superframe(v6, 4000);
        let ip_len = if v6 { 40 } else { 20 };
        let tcp = ETH + ip_len;
        let segs = segment_tcp(&big, 1500).expect("cut");
        let mss = 1500 - ip_len - 20;
        assert_eq!(segs.len(), 4000usize.div_ceil(mss));
        let mut payload = Vec::new();
        for (i, s) in segs.iter().enumerate() {
            assert!(s.len() <= ETH + 1500);
            let tcp_len = s.len() - tcp;
            let pseudo = if v6 {
                assert_eq!(usize::from(be16(s, ETH + 4)), tcp_len);
                sum16(&s[ETH + 8..ETH + 40], 6 + tcp_len as u64)
            } else {
                assert_eq!(usize::from(be16(s, ETH + 2)), s.len() - ETH);
                assert_eq!(fold(sum16(&s[ETH..tcp], 0)), 0, "IPv4 header checksum");
                sum16(&s[ETH + 12..ETH + 20], 6 + tcp_len as u64)
            };
            assert_eq!(fold(sum16(&s[tcp..], pseudo)), 0, "TCP checksum of segment {i}");
            let seq = u32::from_be_bytes(s[tcp + 4..tcp + 8].try_into().unwrap());
            assert_eq!(seq, 0xffff_f000u32.wrapping_add((i * mss) as u32));
            let last = i + 1 == segs.len();
            assert_eq!(s[tcp + 13] & (TCP_FIN | TCP_PSH) != 0, last);
            assert_eq!(s[tcp + 13] & TCP_CWR != 0, i == 0);
            payload.extend_from_slice(&s[tcp + 20..]);
        }
        assert_eq!(payload, big[tcp + 20..]);
        // In the shaper, every piece is a wire segment of its own.
        let mut s = Shaper::new(Impairment::default().loss(0.5), 1500, 9);
        for _ in 0..100 {
            s.admit(Duration::ZERO, &big);
        }
        assert_eq!((s.stats.frames, s.stats.oversized, s.stats.segments), (100, 100, 300));
        assert_eq!(s.stats.lost + s.held.len() as u64, 300);
    }
}

#[test]
fn an_oversized_frame_that_cannot_be_cut_counts_as_several_segments() {
    let mut s = Shaper::new(Impairment::default().loss(0.1), 1500, 2);
    for _ in 0..1000 {
        s.admit(Duration::ZERO, &frame(ETH + 9000));
    }
    assert_eq!(s.stats.segments, 6000);
    // A frame survives only if all six of its segments do: 0.9^6 = 53 % of them.
    let kept = s.held.len();
    assert!((450..=610).contains(&kept), "{kept} of 1000 kept");
}
