//! RTP → H.264 access units (RFC 6184, non-interleaved mode): single NAL
//! unit packets, STAP-A and FU-A. An access unit ends at the marker bit or
//! when the timestamp changes. A lost, malformed or oversized packet drops
//! the access unit it belonged to and everything up to the next IDR (a
//! decoder cannot use P frames whose reference is gone); each drop is
//! counted. Packets arriving late (reordered, duplicated) are dropped too:
//! over RTSP's TCP interleaving they do not happen, and a jitter buffer
//! would only add latency.
//!
//! Frame times come from RTP timestamps unless those are implausible (not
//! advancing, or drifting far from the wall clock, as P2S firmware stamps
//! them); then the arrival time is used for the rest of the session.

use super::h264::{
    length_prefixed_nals, nal_type, push_length_prefixed, NAL_IDR, NAL_PPS, NAL_SPS,
};
use super::rtp::RtpPacket;
use super::MediaError;
use std::time::Duration;

/// The largest access unit accepted: a 1080p IDR frame is a few hundred KB.
pub const MAX_ACCESS_UNIT: usize = 4 * 1024 * 1024;

/// The H.264 RTP clock.
pub const CLOCK_RATE: u64 = 90_000;

const STAP_A: u8 = 24;
const FU_A: u8 = 28;

/// One coded picture, ready for an MP4 sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessUnit {
    /// The NAL units, each with a 4-byte big-endian length.
    pub data: Vec<u8>,
    /// Contains an IDR slice: a decoder can start here.
    pub keyframe: bool,
    pub rtp_timestamp: u32,
    /// Presentation time in 90 kHz ticks from the first access unit output;
    /// strictly increasing.
    pub time: u64,
}

impl AccessUnit {
    pub fn nals(&self) -> impl Iterator<Item = &[u8]> {
        // `data` is only ever built by push_length_prefixed.
        length_prefixed_nals(&self.data).filter_map(Result::ok)
    }
}

/// What happened to the packets so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    pub packets: u64,
    /// Missing sequence numbers.
    pub lost_packets: u64,
    /// Packets older than the last one (reordered or duplicated), dropped.
    pub late_packets: u64,
    /// Packets that are not RTP or not a payload this depacketizer takes.
    pub malformed_packets: u64,
    /// Access units dropped because part of them was lost, malformed or
    /// too large.
    pub broken_units: u64,
    /// Whole access units dropped while waiting for a keyframe.
    pub skipped_units: u64,
    /// Access units that grew past the size limit (also counted as broken).
    pub oversized_units: u64,
    /// Why the last access unit broke, for a log line.
    pub last_damage: Option<&'static str>,
    /// Frame times come from arrival times, RTP timestamps were implausible.
    pub arrival_clock: bool,
}

/// The access unit being assembled.
struct Pending {
    timestamp: u32,
    arrival: Duration,
    data: Vec<u8>,
    /// Where the length of the FU-A NAL unit being reassembled sits in `data`.
    fragment: Option<usize>,
    keyframe: bool,
    /// Part of it is missing or bad; its payloads are no longer kept.
    broken: bool,
}

/// Why an access unit cannot be used.
enum Damage {
    Malformed(&'static str),
    Oversized,
}

/// Turns RTP packets of one H.264 stream into access units.
pub struct Depacketizer {
    max_unit: usize,
    expected: Option<u16>,
    ssrc: Option<u32>,
    /// The next packet may not start an access unit cleanly.
    resync: bool,
    pending: Option<Pending>,
    waiting_for_keyframe: bool,
    sps: Option<Vec<u8>>,
    pps: Option<Vec<u8>>,
    clock: FrameClock,
    stats: Stats,
}

/// Sequence numbers this far behind are a restarted stream, not a late packet.
const MAX_LATE: u16 = 1000;

impl Default for Depacketizer {
    fn default() -> Self {
        Depacketizer::new(MAX_ACCESS_UNIT)
    }
}

impl Depacketizer {
    pub fn new(max_unit: usize) -> Depacketizer {
        Depacketizer {
            max_unit,
            expected: None,
            ssrc: None,
            resync: false,
            pending: None,
            waiting_for_keyframe: true,
            sps: None,
            pps: None,
            clock: FrameClock::default(),
            stats: Stats::default(),
        }
    }

    /// Parameter sets known before the first packet (the SDP's
    /// `sprop-parameter-sets`); in-band ones replace them.
    pub fn set_parameter_sets(&mut self, nals: &[Vec<u8>]) {
        for nal in nals {
            self.remember_parameter_set(nal);
        }
    }

    /// The sequence number of the first packet, from the RTSP `RTP-Info`
    /// header: without it a loss of the first packets cannot be seen.
    pub fn expect_sequence(&mut self, sequence: u16) {
        self.expected = Some(sequence);
    }

    pub fn sps(&self) -> Option<&[u8]> {
        self.sps.as_deref()
    }

    pub fn pps(&self) -> Option<&[u8]> {
        self.pps.as_deref()
    }

    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Takes one RTP packet that arrived `arrival` after some fixed instant;
    /// returns the access units it completes (at most two: the previous one,
    /// when its marker bit was lost, and its own).
    pub fn push(&mut self, packet: &[u8], arrival: Duration) -> Vec<AccessUnit> {
        self.stats.packets += 1;
        let mut out = Vec::new();
        let p = match RtpPacket::parse(packet) {
            Ok(p) => p,
            Err(_) => {
                self.stats.malformed_packets += 1;
                self.break_pending(Damage::Malformed("not an RTP packet"));
                self.resync = true;
                return out;
            }
        };
        let Some(lost) = self.sequence_gap(&p) else {
            return out;
        };
        let gap = std::mem::take(&mut self.resync) || lost;
        if gap {
            self.break_pending(Damage::Malformed("packets lost"));
        }
        if self
            .pending
            .as_ref()
            .is_some_and(|a| a.timestamp != p.timestamp)
        {
            self.finish(&mut out);
        }
        let unit = self.pending.get_or_insert_with(|| Pending {
            timestamp: p.timestamp,
            arrival,
            data: Vec::new(),
            fragment: None,
            keyframe: false,
            broken: gap,
        });
        if !unit.broken {
            if let Err(damage) = depayload(unit, p.payload, self.max_unit) {
                if matches!(damage, Damage::Malformed(_)) {
                    self.stats.malformed_packets += 1;
                }
                self.break_pending(damage);
            }
        }
        if p.marker {
            self.finish(&mut out);
        }
        out
    }

    /// Some(true) if packets were lost before `p`, Some(false) if it is the
    /// next one, None if it is late and to be ignored.
    fn sequence_gap(&mut self, p: &RtpPacket) -> Option<bool> {
        let same_stream = self.ssrc.replace(p.ssrc).is_none_or(|s| s == p.ssrc);
        let gap = match self.expected {
            Some(expected) if same_stream => {
                let ahead = p.sequence.wrapping_sub(expected);
                let behind = expected.wrapping_sub(p.sequence);
                if ahead == 0 {
                    false
                } else if behind > 0 && behind <= MAX_LATE {
                    self.stats.late_packets += 1;
                    return None;
                } else {
                    self.stats.lost_packets += u64::from(ahead.min(behind));
                    true
                }
            }
            Some(_) => true,
            None => false,
        };
        self.expected = Some(p.sequence.wrapping_add(1));
        Some(gap)
    }

    fn break_pending(&mut self, damage: Damage) {
        if let Some(unit) = self.pending.as_mut() {
            if !unit.broken {
                unit.broken = true;
                unit.data = Vec::new();
                self.stats.last_damage = Some(match damage {
                    Damage::Malformed(why) => why,
                    Damage::Oversized => "access unit too large",
                });
                if matches!(damage, Damage::Oversized) {
                    self.stats.oversized_units += 1;
                }
            }
        }
    }

    /// Ends the pending access unit: out it goes, or it is counted as dropped.
    fn finish(&mut self, out: &mut Vec<AccessUnit>) {
        if self.pending.as_ref().is_some_and(|u| u.fragment.is_some()) {
            self.break_pending(Damage::Malformed("fragmented NAL unit not finished"));
        }
        let Some(unit) = self.pending.take() else {
            return;
        };
        if unit.broken {
            self.stats.broken_units += 1;
            self.waiting_for_keyframe = true;
            return;
        }
        if unit.data.is_empty() {
            return;
        }
        if self.waiting_for_keyframe && !unit.keyframe {
            self.stats.skipped_units += 1;
            return;
        }
        self.waiting_for_keyframe = false;
        let au = AccessUnit {
            data: unit.data,
            keyframe: unit.keyframe,
            rtp_timestamp: unit.timestamp,
            time: self.clock.time(unit.timestamp, unit.arrival),
        };
        self.stats.arrival_clock = self.clock.from_arrival;
        for nal in au.nals() {
            self.remember_parameter_set(nal);
        }
        out.push(au);
    }

    fn remember_parameter_set(&mut self, nal: &[u8]) {
        match nal.first().map(|&h| nal_type(h)) {
            Some(NAL_SPS) if self.sps.as_deref() != Some(nal) => self.sps = Some(nal.to_vec()),
            Some(NAL_PPS) if self.pps.as_deref() != Some(nal) => self.pps = Some(nal.to_vec()),
            _ => {}
        }
    }
}

/// Adds one packet's payload to `unit`.
fn depayload(unit: &mut Pending, payload: &[u8], max: usize) -> Result<(), Damage> {
    let (&indicator, rest) = payload
        .split_first()
        .ok_or(Damage::Malformed("empty RTP payload"))?;
    match nal_type(indicator) {
        1..=23 => push_nal(unit, payload, max),
        STAP_A => {
            let mut rest = rest;
            while !rest.is_empty() {
                let Some((len, tail)) = rest.split_first_chunk::<2>() else {
                    return Err(Damage::Malformed("STAP-A size cut off"));
                };
                let len = usize::from(u16::from_be_bytes(*len));
                if len == 0 || len > tail.len() {
                    return Err(Damage::Malformed("STAP-A NAL unit size wrong"));
                }
                push_nal(unit, &tail[..len], max)?;
                rest = &tail[len..];
            }
            Ok(())
        }
        FU_A => fragment(unit, indicator, rest, max),
        25..=27 | 29 => Err(Damage::Malformed(
            "interleaved-mode packet (STAP-B, MTAP, FU-B)",
        )),
        _ => Err(Damage::Malformed("reserved NAL unit type")),
    }
}

fn push_nal(unit: &mut Pending, nal: &[u8], max: usize) -> Result<(), Damage> {
    if unit.fragment.is_some() {
        return Err(Damage::Malformed("NAL unit inside a fragmented one"));
    }
    make_room(unit, 4 + nal.len(), max)?;
    unit.keyframe |= nal_type(nal[0]) == NAL_IDR;
    push_length_prefixed(&mut unit.data, nal);
    Ok(())
}

fn make_room(unit: &Pending, more: usize, max: usize) -> Result<(), Damage> {
    if unit.data.len() + more > max {
        return Err(Damage::Oversized);
    }
    Ok(())
}

/// One FU-A packet: `rest` is the FU header and the fragment.
fn fragment(unit: &mut Pending, indicator: u8, rest: &[u8], max: usize) -> Result<(), Damage> {
    let (&header, piece) = rest
        .split_first()
        .ok_or(Damage::Malformed("FU-A without its header"))?;
    let (start, end) = (header & 0x80 != 0, header & 0x40 != 0);
    let at = match (start, unit.fragment) {
        (true, None) => {
            make_room(unit, 5, max)?;
            let at = unit.data.len();
            unit.data.extend_from_slice(&[0; 4]);
            unit.data.push((indicator & 0xE0) | (header & 0x1F));
            unit.fragment = Some(at);
            at
        }
        (true, Some(_)) => return Err(Damage::Malformed("FU-A start inside another")),
        (false, Some(at)) => at,
        (false, None) => return Err(Damage::Malformed("FU-A continued without a start")),
    };
    make_room(unit, piece.len(), max)?;
    unit.data.extend_from_slice(piece);
    if end {
        let len = (unit.data.len() - at - 4) as u32;
        unit.data[at..at + 4].copy_from_slice(&len.to_be_bytes());
        unit.keyframe |= nal_type(header) == NAL_IDR;
        unit.fragment = None;
    }
    Ok(())
}

/// Frame times in 90 kHz ticks, from RTP timestamps while they keep pace
/// with the wall clock, from arrival times once they have not.
#[derive(Default)]
struct FrameClock {
    /// RTP timestamp, arrival and output time of the previous frame.
    last: Option<(u32, Duration, u64)>,
    first_arrival: Duration,
    from_arrival: bool,
}

/// RTP time may run this far from the wall clock, plus a quarter of the
/// time since the first frame, before it is distrusted: stalls and bursts
/// of a few seconds are normal on a busy network.
const CLOCK_SLACK: u64 = 5 * CLOCK_RATE;

fn ticks(d: Duration) -> u64 {
    (d.as_micros() * u128::from(CLOCK_RATE) / 1_000_000) as u64
}

impl FrameClock {
    fn time(&mut self, rtp: u32, arrival: Duration) -> u64 {
        let Some((last_rtp, last_arrival, last_out)) = self.last else {
            self.last = Some((rtp, arrival, 0));
            self.first_arrival = arrival;
            return 0;
        };
        let wall_step = ticks(arrival.saturating_sub(last_arrival));
        let rtp_step = rtp.wrapping_sub(last_rtp) as i32;
        if !self.from_arrival {
            let wall = ticks(arrival.saturating_sub(self.first_arrival));
            let media = last_out + u64::try_from(rtp_step).unwrap_or(0);
            self.from_arrival = rtp_step <= 0 || media.abs_diff(wall) > CLOCK_SLACK + wall / 4;
        }
        let step = if self.from_arrival {
            wall_step.max(1)
        } else {
            rtp_step as u64
        };
        let out = last_out + step;
        self.last = Some((rtp, arrival, out));
        out
    }
}

/// RTP payloads for one access unit (RFC 6184 packetization mode 1), none
/// longer than `mtu`: small NAL units in runs become STAP-A, those that fit
/// go alone, larger ones are cut into FU-A.
pub fn packetize(nals: &[&[u8]], mtu: usize) -> Vec<Vec<u8>> {
    let mtu = mtu.max(3);
    let mut out = Vec::new();
    let mut i = 0;
    while i < nals.len() {
        let mut run = 0;
        let mut size = 1;
        while i + run < nals.len() && size + 2 + nals[i + run].len() <= mtu.min(65_535) {
            size += 2 + nals[i + run].len();
            run += 1;
        }
        if run >= 2 {
            out.push(stap_a(&nals[i..i + run]));
            i += run;
            continue;
        }
        let nal = nals[i];
        if nal.len() <= mtu {
            out.push(nal.to_vec());
        } else {
            let cuts: Vec<usize> = ((mtu - 2)..nal.len() - 1).step_by(mtu - 2).collect();
            out.extend(fu_a(nal, &cuts));
        }
        i += 1;
    }
    out
}

/// One STAP-A payload holding `nals` (each shorter than 64 KB).
pub fn stap_a(nals: &[&[u8]]) -> Vec<u8> {
    let nri = nals.iter().map(|n| n.first().map_or(0, |h| h & 0x60)).max();
    let forbidden = nals
        .iter()
        .fold(0, |f, n| f | n.first().map_or(0, |h| h & 0x80));
    let mut out = vec![forbidden | nri.unwrap_or(0) | STAP_A];
    for nal in nals {
        out.extend_from_slice(&(nal.len() as u16).to_be_bytes());
        out.extend_from_slice(nal);
    }
    out
}

/// FU-A payloads for `nal`, its payload (after the header byte) cut at the
/// offsets `cuts` (out-of-range and repeated ones are ignored).
pub fn fu_a(nal: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
    let Some((&header, payload)) = nal.split_first() else {
        return Vec::new();
    };
    let mut bounds: Vec<usize> = cuts
        .iter()
        .copied()
        .filter(|&c| c > 0 && c < payload.len())
        .collect();
    bounds.sort_unstable();
    bounds.dedup();
    bounds.insert(0, 0);
    bounds.push(payload.len());
    let last = bounds.len() - 2;
    (0..=last)
        .map(|k| {
            let start = if k == 0 { 0x80 } else { 0 };
            let end = if k == last { 0x40 } else { 0 };
            let mut p = vec![(header & 0xE0) | FU_A, start | end | nal_type(header)];
            p.extend_from_slice(&payload[bounds[k]..bounds[k + 1]]);
            p
        })
        .collect()
}

/// Wraps payloads in RTP headers with running sequence numbers.
pub struct Packetizer {
    pub payload_type: u8,
    pub ssrc: u32,
    pub sequence: u16,
}

impl Packetizer {
    /// RTP packets for one access unit: its payloads, the marker on the last.
    pub fn packets(&mut self, payloads: &[Vec<u8>], timestamp: u32) -> Vec<Vec<u8>> {
        let count = payloads.len();
        payloads
            .iter()
            .enumerate()
            .map(|(i, payload)| {
                let packet = RtpPacket {
                    marker: i + 1 == count,
                    payload_type: self.payload_type,
                    sequence: self.sequence,
                    timestamp,
                    ssrc: self.ssrc,
                    payload,
                };
                self.sequence = self.sequence.wrapping_add(1);
                packet.to_bytes()
            })
            .collect()
    }
}

/// The parameter sets of an SDP `sprop-parameter-sets` value: base64 NAL
/// units separated by commas.
pub fn sprop_parameter_sets(value: &str) -> Result<Vec<Vec<u8>>, MediaError> {
    value
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|s| {
            base64(s).ok_or_else(|| {
                MediaError::new("sprop-parameter-sets", format!("not base64: {s:.40}"))
            })
        })
        .collect()
}

/// Standard base64 with optional `=` padding.
fn base64(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in text.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        };
        acc = (acc << 6) | u32::from(v);
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    // Leftover bits must be zero padding of the last byte, and one
    // character alone cannot encode a byte.
    let leftover_clean = acc & ((1 << bits) - 1) == 0;
    (bits < 6 && leftover_clean).then_some(out)
}

#[cfg(test)]
mod tests;
