use super::*;
use crate::media::h264::to_length_prefixed;
use proptest::prelude::*;

const SPS: &[u8] = &[0x67, 0x64, 0x00, 0x16, 0xAC, 0xB2];
const PPS: &[u8] = &[0x68, 0xEB, 0xC3];

fn nal(header: u8, len: usize, seed: u8) -> Vec<u8> {
    let mut n = vec![header];
    n.extend((0..len).map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed)));
    n
}

fn idr(len: usize) -> Vec<u8> {
    nal(0x65, len, 1)
}

fn p_slice(len: usize, seed: u8) -> Vec<u8> {
    nal(0x41, len, seed)
}

struct Feed {
    packetizer: Packetizer,
    depacketizer: Depacketizer,
    out: Vec<AccessUnit>,
    arrival: Duration,
}

impl Feed {
    fn new() -> Feed {
        Feed {
            packetizer: Packetizer {
                payload_type: 96,
                ssrc: 7,
                sequence: 65_530,
            },
            depacketizer: Depacketizer::default(),
            out: Vec::new(),
            arrival: Duration::ZERO,
        }
    }

    fn packets(&mut self, payloads: &[Vec<u8>], ts: u32) -> Vec<Vec<u8>> {
        self.packetizer.packets(payloads, ts)
    }

    fn push(&mut self, packets: &[Vec<u8>]) {
        for p in packets {
            let aus = self.depacketizer.push(p, self.arrival);
            self.out.extend(aus);
        }
        self.arrival += Duration::from_millis(66);
    }

    /// Sends one access unit of `nals`, packetized for `mtu`.
    fn unit(&mut self, nals: &[&[u8]], ts: u32, mtu: usize) {
        let packets = self.packets(&packetize(nals, mtu), ts);
        self.push(&packets);
    }
}

fn sample(nals: &[&[u8]]) -> Vec<u8> {
    to_length_prefixed(nals.iter().copied())
}

#[test]
fn single_stap_a_and_fu_a_packets_make_exact_access_units() {
    let mut f = Feed::new();
    let (i, p) = (idr(3000), p_slice(40, 3));
    // SPS + PPS go as one STAP-A, the IDR as FU-A in 1400-byte pieces.
    let payloads = packetize(&[SPS, PPS, &i], 1400);
    assert_eq!(payloads.len(), 4);
    assert_eq!(payloads[0][0] & 0x1F, 24);
    assert_eq!(payloads[1][..2], [0x60 | 28, 0x80 | 5], "FU-A start");
    assert_eq!(payloads[2][1], 5, "FU-A middle");
    assert_eq!(payloads[3][1], 0x40 | 5, "FU-A end");
    assert!(payloads.iter().all(|p| p.len() <= 1400));
    let packets = f.packets(&payloads, 1000);
    f.push(&packets);
    f.unit(&[&p], 4000, 1400);
    assert_eq!(f.out.len(), 2);
    assert_eq!(f.out[0].data, sample(&[SPS, PPS, &i]));
    assert!(f.out[0].keyframe);
    assert_eq!(f.out[0].rtp_timestamp, 1000);
    assert_eq!(f.out[1].data, sample(&[&p]));
    assert!(!f.out[1].keyframe);
    assert_eq!(f.out[1].time - f.out[0].time, 3000);
    assert_eq!(f.depacketizer.sps(), Some(SPS));
    assert_eq!(f.depacketizer.pps(), Some(PPS));
    let s = f.depacketizer.stats();
    assert_eq!((s.lost_packets, s.broken_units, s.skipped_units), (0, 0, 0));
}

#[test]
fn a_timestamp_change_ends_an_access_unit_whose_marker_was_lost() {
    let mut d = Depacketizer::default();
    let i = idr(10);
    let p = p_slice(10, 2);
    let mut first = Packetizer {
        payload_type: 96,
        ssrc: 1,
        sequence: 0,
    }
    .packets(std::slice::from_ref(&i), 100)
    .remove(0);
    first[1] &= 0x7F; // no marker
    assert!(d.push(&first, Duration::ZERO).is_empty());
    let second = Packetizer {
        payload_type: 96,
        ssrc: 1,
        sequence: 1,
    }
    .packets(std::slice::from_ref(&p), 200);
    let out = d.push(&second[0], Duration::from_millis(40));
    assert_eq!(out.len(), 2, "the unmarked one and the marked one");
    assert_eq!(out[0].data, sample(&[&i]));
    assert_eq!(out[1].data, sample(&[&p]));
}

#[test]
fn a_lost_fragment_drops_the_unit_and_waits_for_the_next_idr() {
    let mut f = Feed::new();
    f.unit(&[SPS, PPS, &idr(50)], 0, 1400);
    let big = p_slice(5000, 4);
    let mut packets = f.packets(&packetize(&[&big], 1400), 6000);
    packets.remove(2); // an FU-A middle
    f.push(&packets);
    f.unit(&[&p_slice(30, 5)], 12_000, 1400);
    f.unit(&[&idr(2000)], 18_000, 500);
    f.unit(&[&p_slice(30, 6)], 24_000, 1400);
    let kept: Vec<u32> = f.out.iter().map(|a| a.rtp_timestamp).collect();
    assert_eq!(kept, [0, 18_000, 24_000]);
    let s = f.depacketizer.stats();
    assert_eq!(s.lost_packets, 1);
    assert_eq!(s.broken_units, 1);
    assert_eq!(s.skipped_units, 1, "the P frame after the loss");
    assert_eq!(s.last_damage, Some("packets lost"));
}

#[test]
fn a_loss_across_a_unit_boundary_drops_both_sides() {
    let mut f = Feed::new();
    f.unit(&[&idr(3000)], 0, 1000);
    let a = f.packets(&packetize(&[&idr(3000)], 1000), 6000);
    let b = f.packets(&packetize(&[&idr(3000)], 1000), 12_000);
    // The last packet of `a` (its marker) and the first of `b` go missing:
    // what is left of `b` must not pass for a whole IDR.
    f.push(&a[..a.len() - 1]);
    f.push(&b[1..]);
    f.unit(&[&idr(100)], 18_000, 1000);
    let kept: Vec<u32> = f.out.iter().map(|a| a.rtp_timestamp).collect();
    assert_eq!(kept, [0, 18_000]);
    assert_eq!(f.depacketizer.stats().broken_units, 2);
}

#[test]
fn late_and_duplicated_packets_are_dropped_without_harm() {
    let mut f = Feed::new();
    let first = f.packets(&packetize(&[&idr(100)], 1400), 0);
    f.push(&first);
    f.push(&first); // a duplicate
    f.unit(&[&p_slice(10, 1)], 3000, 1400);
    assert_eq!(f.out.len(), 2);
    assert_eq!(f.depacketizer.stats().late_packets, 1);
    assert_eq!(f.depacketizer.stats().broken_units, 0);
}

#[test]
fn sequence_numbers_wrap_and_an_ssrc_change_resyncs() {
    let mut f = Feed::new(); // starts at 65530
    for k in 0..10u32 {
        let n = if k == 0 {
            idr(10)
        } else {
            p_slice(10, k as u8)
        };
        f.unit(&[&n], k * 3000, 1400);
    }
    assert_eq!(f.out.len(), 10, "{:?}", f.depacketizer.stats());
    f.packetizer.ssrc = 8;
    f.packetizer.sequence = 3;
    f.unit(&[&p_slice(10, 1)], 40_000, 1400);
    f.unit(&[&idr(10)], 43_000, 1400);
    assert_eq!(f.out.len(), 11);
    assert_eq!(f.depacketizer.stats().broken_units, 1);
}

#[test]
fn a_loss_of_the_first_packet_is_seen_with_the_sequence_from_rtp_info() {
    let mut f = Feed::new();
    f.depacketizer.expect_sequence(f.packetizer.sequence);
    let first = f.packets(&packetize(&[SPS, PPS, &idr(3000)], 1400), 0);
    f.push(&first[1..]);
    f.unit(&[&idr(10)], 3000, 1400);
    assert_eq!(f.out.len(), 1);
    assert_eq!(f.out[0].rtp_timestamp, 3000);
    assert_eq!(f.depacketizer.stats().lost_packets, 1);
}

#[test]
fn units_before_the_first_keyframe_are_skipped() {
    let mut f = Feed::new();
    f.unit(&[&p_slice(10, 1)], 0, 1400);
    f.unit(&[&idr(10)], 3000, 1400);
    assert_eq!(f.out.len(), 1);
    assert_eq!(f.out[0].time, 0);
    assert_eq!(f.depacketizer.stats().skipped_units, 1);
}

#[test]
fn an_oversized_unit_is_dropped_and_memory_stays_bounded() {
    let mut f = Feed::new();
    f.depacketizer = Depacketizer::new(10_000);
    f.unit(&[&idr(9000)], 0, 1400);
    f.unit(&[&idr(20_000)], 3000, 1400);
    f.unit(&[&p_slice(10, 1)], 6000, 1400);
    f.unit(&[&idr(100)], 9000, 1400);
    let kept: Vec<u32> = f.out.iter().map(|a| a.rtp_timestamp).collect();
    assert_eq!(kept, [0, 9000]);
    let s = f.depacketizer.stats();
    assert_eq!(
        (s.oversized_units, s.broken_units, s.skipped_units),
        (1, 1, 1)
    );
    assert_eq!(s.last_damage, Some("access unit too large"));
}

/// Each payload alone in an access unit after a good IDR: dropped as
/// malformed, and the stream recovers at the next IDR.
#[test]
fn malformed_payloads_break_the_unit() {
    let start = fu_a(&idr(20), &[10]);
    let cases: Vec<(&str, Vec<Vec<u8>>)> = vec![
        ("empty RTP payload", vec![vec![]]),
        ("FU-A continued without a start", vec![start[1].clone()]),
        (
            "FU-A start inside another",
            vec![start[0].clone(), start[0].clone()],
        ),
        (
            "NAL unit inside a fragmented one",
            vec![start[0].clone(), p_slice(3, 1)],
        ),
        ("fragmented NAL unit not finished", vec![start[0].clone()]),
        ("FU-A without its header", vec![vec![0x7C]]),
        ("STAP-A NAL unit size wrong", vec![vec![0x78, 0, 9, 0x41]]),
        ("STAP-A NAL unit size wrong", vec![vec![0x78, 0, 0]]),
        ("STAP-A size cut off", vec![vec![0x78, 0, 1, 0x41, 0]]),
        (
            "interleaved-mode packet (STAP-B, MTAP, FU-B)",
            vec![vec![0x79, 0, 0]],
        ),
        ("reserved NAL unit type", vec![vec![0x00, 1]]),
    ];
    for (why, payloads) in cases {
        let mut f = Feed::new();
        f.unit(&[&idr(10)], 0, 1400);
        let bad = f.packets(&payloads, 3000);
        f.push(&bad);
        f.unit(&[&p_slice(5, 2)], 6000, 1400);
        f.unit(&[&idr(10)], 9000, 1400);
        let kept: Vec<u32> = f.out.iter().map(|a| a.rtp_timestamp).collect();
        assert_eq!(kept, [0, 9000], "{why}");
        assert_eq!(f.depacketizer.stats().last_damage, Some(why));
        assert_eq!(f.depacketizer.stats().broken_units, 1, "{why}");
    }
}

#[test]
fn a_packet_that_is_not_rtp_counts_as_a_loss() {
    let mut f = Feed::new();
    f.unit(&[&idr(10)], 0, 1400);
    let mut next = f.packets(&packetize(&[&p_slice(3000, 1)], 1400), 3000);
    next.insert(1, vec![0x40, 0, 0]);
    f.push(&next);
    f.unit(&[&idr(10)], 6000, 1400);
    assert_eq!(f.out.len(), 2);
    assert_eq!(f.depacketizer.stats().malformed_packets, 1);
    assert_eq!(f.depacketizer.stats().broken_units, 1);
}

#[test]
fn fu_a_cut_points_rebuild_the_header() {
    let n = nal(0x25, 10, 9); // NRI 1, IDR
    let parts = fu_a(&n, &[0, 3, 3, 7, 50]);
    assert_eq!(parts.len(), 3);
    assert_eq!(parts[0][..2], [0x20 | 28, 0x80 | 5]);
    assert_eq!(parts[2][..2], [0x20 | 28, 0x40 | 5]);
    let rebuilt: Vec<u8> = std::iter::once(0x25)
        .chain(parts.iter().flat_map(|p| p[2..].to_vec()))
        .collect();
    assert_eq!(rebuilt, n);
}

#[test]
fn sprop_parameter_sets_decode() {
    let sets = sprop_parameter_sets("Z2QAFqyyAUBf8uAiAAADAAIAAAMAPB4sXJA=,aOvDyyLA").unwrap();
    assert_eq!(sets.len(), 2);
    assert_eq!(sets[0][..4], [0x67, 0x64, 0x00, 0x16]);
    assert_eq!(sets[1], [0x68, 0xEB, 0xC3, 0xCB, 0x22, 0xC0]);
    let mut d = Depacketizer::default();
    d.set_parameter_sets(&sets);
    assert_eq!(d.pps(), Some(&sets[1][..]));
    assert!(sprop_parameter_sets("Z2Q*").is_err());
    assert!(sprop_parameter_sets("Z").is_err(), "a lone character");
    assert!(
        sprop_parameter_sets("Z3").is_err(),
        "bits set past the last byte"
    );
    assert_eq!(base64("TWFu").unwrap(), b"Man");
    assert_eq!(base64("TWE=").unwrap(), b"Ma");
}

/// Frame times for RTP timestamps `rtp` arriving at `ms` milliseconds.
fn clock(rtp: &[u32], ms: &[u64]) -> (Vec<u64>, bool) {
    let mut c = FrameClock::default();
    let times = rtp
        .iter()
        .zip(ms)
        .map(|(&r, &m)| c.time(r, Duration::from_millis(m)))
        .collect();
    (times, c.from_arrival)
}

#[test]
fn clock_follows_rtp_timestamps_through_jitter_stalls_and_wrap() {
    // 15 fps with ±30 ms jitter, a 3 s stall and its burst, and the RTP
    // timestamp wrapping past 2^32.
    let start = u32::MAX - 20_000;
    let rtp: Vec<u32> = (0..100u32).map(|k| start.wrapping_add(k * 6000)).collect();
    let ms: Vec<u64> = (0..100u64)
        .map(|k| k * 66 + [0, 30, 0, 25][k as usize % 4] + if k >= 50 { 3000 } else { 0 })
        .map(|m| {
            if (50..55).contains(&(m / 66)) {
                50 * 66 + 3000
            } else {
                m
            }
        })
        .collect();
    let (times, from_arrival) = clock(&rtp, &ms);
    assert!(!from_arrival);
    assert_eq!(times, (0..100u64).map(|k| k * 6000).collect::<Vec<_>>());
}

#[test]
fn clock_falls_back_to_arrival_when_timestamps_stand_still() {
    let (times, from_arrival) = clock(&[5, 5, 5, 5], &[0, 100, 200, 300]);
    assert!(from_arrival);
    assert_eq!(times, [0, 9000, 18_000, 27_000]);
}

#[test]
fn clock_falls_back_when_timestamps_run_at_half_speed() {
    // 1 s of RTP time per 2 s of wall time: distrusted once the drift
    // exceeds 5 s plus a quarter of the elapsed time (after 20 s).
    let rtp: Vec<u32> = (0..40u32).map(|k| k * 90_000).collect();
    let ms: Vec<u64> = (0..40u64).map(|k| k * 2000).collect();
    let (times, from_arrival) = clock(&rtp, &ms);
    assert!(from_arrival);
    assert_eq!(times[10], 900_000, "still RTP time at 20 s");
    assert_eq!(times[39] - times[38], 180_000, "arrival time at the end");
    assert!(times.windows(2).all(|w| w[1] > w[0]));
}

#[test]
fn clock_falls_back_on_a_jump_and_stays_increasing_when_arrivals_tie() {
    let (times, from_arrival) = clock(&[0, 6000, 4_000_000_000, 4_000_006_000], &[0, 66, 132, 132]);
    assert!(from_arrival);
    assert_eq!(times, [0, 6000, 6000 + 5940, 6000 + 5941]);
}

/// A random stream: access units of random NAL units, packetized every
/// way, then damaged.
#[derive(Debug, Clone)]
struct Unit {
    nals: Vec<Vec<u8>>,
    step: u32,
}

fn unit_strategy() -> impl Strategy<Value = Unit> {
    let nal = (
        prop_oneof![
            Just(0x65u8),
            Just(0x41),
            Just(0x01),
            Just(0x06),
            Just(0x67),
            Just(0x68)
        ],
        proptest::collection::vec(any::<u8>(), 0..2500),
    )
        .prop_map(|(h, body)| {
            let mut n = vec![h];
            n.extend(body);
            n
        });
    (proptest::collection::vec(nal, 1..5), 1u32..20_000)
        .prop_map(|(nals, step)| Unit { nals, step })
}

/// A tiny deterministic generator for packetization choices.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 % n.max(1) as u64) as usize
    }
}

/// Payloads for one unit, each NAL unit or run of them sent a random way.
fn random_payloads(nals: &[Vec<u8>], rng: &mut Rng) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut i = 0;
    while i < nals.len() {
        let run = 1 + rng.below(nals.len() - i);
        match rng.below(3) {
            0 if run >= 2 => {
                let refs: Vec<&[u8]> = nals[i..i + run].iter().map(Vec::as_slice).collect();
                out.push(stap_a(&refs));
                i += run;
                continue;
            }
            1 if nals[i].len() > 2 => {
                let cuts: Vec<usize> = (0..rng.below(6))
                    .map(|_| rng.below(nals[i].len()))
                    .collect();
                out.extend(fu_a(&nals[i], &cuts));
            }
            _ => out.push(nals[i].clone()),
        }
        i += 1;
    }
    out
}

/// Which unit each packet belongs to, and the packets.
fn stream(units: &[Unit], seed: u64) -> Vec<(usize, Vec<u8>)> {
    let mut rng = Rng(seed | 1);
    let mut p = Packetizer {
        payload_type: 96,
        ssrc: 42,
        sequence: rng.below(65_536) as u16,
    };
    let mut ts = rng.below(1 << 31) as u32;
    let mut out = Vec::new();
    for (k, unit) in units.iter().enumerate() {
        ts = ts.wrapping_add(unit.step);
        let payloads = random_payloads(&unit.nals, &mut rng);
        out.extend(p.packets(&payloads, ts).into_iter().map(|pk| (k, pk)));
    }
    out
}

fn expected(units: &[Unit]) -> Vec<Vec<u8>> {
    units
        .iter()
        .map(|u| to_length_prefixed(u.nals.iter().map(Vec::as_slice)))
        .collect()
}

fn first_unit() -> Unit {
    Unit {
        nals: vec![SPS.to_vec(), PPS.to_vec(), idr(700)],
        step: 1,
    }
}

/// Sent whole after the damaged ones.
fn last_unit() -> Unit {
    Unit {
        nals: vec![idr(50)],
        step: 3000,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn every_packetization_gives_back_the_exact_units(
        rest in proptest::collection::vec(unit_strategy(), 0..12),
        seed in any::<u64>(),
    ) {
        let mut units = vec![first_unit()];
        units.extend(rest);
        let mut d = Depacketizer::default();
        let mut out = Vec::new();
        for (_, packet) in stream(&units, seed) {
            out.extend(d.push(&packet, Duration::ZERO));
        }
        let got: Vec<Vec<u8>> = out.iter().map(|a| a.data.clone()).collect();
        prop_assert_eq!(got, expected(&units));
        for (a, u) in out.iter().zip(&units) {
            prop_assert_eq!(a.keyframe, u.nals.iter().any(|n| n[0] & 0x1F == 5));
        }
        prop_assert_eq!(d.stats().broken_units + d.stats().skipped_units, 0);
    }

    /// Kinds of damage: 0 loses a packet, 1 swaps it with the next, 2 sends it twice.
    #[test]
    fn damage_drops_whole_units_counted_and_recovers_at_an_idr(
        rest in proptest::collection::vec(unit_strategy(), 1..12),
        seed in any::<u64>(),
        damage in proptest::collection::vec((any::<prop::sample::Index>(), 0u8..3), 1..4),
    ) {
        let mut units = vec![first_unit()];
        units.extend(rest);
        // A loss of a stream's last packets cannot be seen by anyone: no
        // later sequence number shows the gap. Damage never picks the last
        // packet, but a swap of the last two and then the loss of the new
        // second-to-last one loses it all the same. A camera stream goes
        // on, so a whole unit follows the damaged ones and every loss is
        // visible.
        units.push(last_unit());
        let mut packets = stream(&units, seed);
        // Without it a loss of the very first packet could not be seen.
        let first_sequence = u16::from_be_bytes([packets[0].1[2], packets[0].1[3]]);
        let mut damageable = packets.iter().filter(|(k, _)| *k + 1 < units.len()).count();
        let mut bad_units = Vec::new();
        for (at, kind) in damage {
            if damageable < 2 {
                break;
            }
            let i = at.index(damageable - 1);
            bad_units.push(packets[i].0);
            match kind {
                0 => { packets.remove(i); damageable -= 1; }
                1 => { bad_units.push(packets[i + 1].0); packets.swap(i, i + 1); }
                _ => { let dup = packets[i].clone(); packets.insert(i + 1, dup); damageable += 1; }
            }
        }
        let mut d = Depacketizer::default();
        d.expect_sequence(first_sequence);
        let mut out = Vec::new();
        for (_, packet) in &packets {
            out.extend(d.push(packet, Duration::ZERO));
        }
        let want = expected(&units);
        // Every unit out is one that went in, whole, in order.
        let mut next = 0;
        let mut previous: Option<usize> = None;
        for a in &out {
            let k = (next..want.len()).find(|&k| want[k] == a.data && units[k].step > 0);
            prop_assert!(k.is_some(), "an access unit that was never sent");
            let k = k.unwrap_or(0);
            // After a gap, output restarts at a keyframe.
            if previous.map_or(k != 0, |p| k != p + 1) {
                prop_assert!(a.keyframe, "unit {} follows a gap but is no keyframe", k);
            }
            previous = Some(k);
            next = k + 1;
        }
        let s = d.stats();
        if out.len() < units.len() {
            prop_assert!(s.lost_packets + s.late_packets > 0, "a drop nobody counted: {:?}", s);
            // A gap breaks the unit it falls in, or the next one when it
            // falls between two, so the drop shows in broken_units too.
            prop_assert!(s.broken_units > 0, "a drop without a broken unit: {:?}", s);
        }
        // Units sent whole after the last damage come out from the first
        // keyframe on (the unit right after the damage may be cut too).
        let last_bad = bad_units.iter().copied().max().unwrap_or(0);
        if let Some(key) = (last_bad + 2..units.len()).find(|&k| units[k].nals.iter().any(|n| n[0] & 0x1F == 5)) {
            for (k, unit) in want.iter().enumerate().skip(key) {
                prop_assert!(out.iter().any(|a| &a.data == unit), "unit {} lost for good", k);
            }
        }
    }

    #[test]
    fn random_bytes_never_panic_or_grow_past_the_limit(
        packets in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 0..50),
    ) {
        let mut d = Depacketizer::new(1000);
        for mut p in packets {
            if p.len() >= 2 {
                p[0] = 0x80; // mostly valid RTP headers, random everything else
            }
            for a in d.push(&p, Duration::ZERO) {
                prop_assert!(a.data.len() <= 1000);
                prop_assert!(length_prefixed_nals(&a.data).all(|n| n.is_ok()));
            }
        }
    }
}
