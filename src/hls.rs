//! HLS for players that do not play an endless MP4 (Safari, iPhones): the
//! camera's fragments cut into segments of one group of pictures each, the
//! last few kept in a ring, and the playlist that lists them. Fed by the
//! camera's `Gop` with the same fragments `stream.mp4` viewers get.

use crate::media::fmp4::{decode_time, TIMESCALE};
use crate::media::{MAX_GOP_BYTES, MAX_GOP_FRAMES};
use crate::sync::lock;
use std::collections::VecDeque;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

/// Complete segments kept: a player starts a few segments from the end.
pub const MAX_SEGMENTS: usize = 4;
/// All kept segments together at most, as one group of pictures may be.
pub const MAX_RING_BYTES: usize = MAX_GOP_BYTES;

/// One group of pictures, from a keyframe to just before the next.
#[derive(Debug)]
pub struct Segment {
    /// The playlist's media sequence number: rises by one per segment.
    pub sequence: u64,
    /// In `TIMESCALE` units (90 kHz): from its keyframe to the next.
    pub duration: u64,
    /// Its fragments (`moof` + `mdat` each), one after the other.
    pub data: Arc<[u8]>,
}

#[derive(Default)]
pub struct Segments {
    ring: Mutex<Ring>,
    /// Signalled when a segment is complete.
    added: Condvar,
}

#[derive(Default)]
struct Ring {
    /// Nothing is kept until a player asks for HLS: most cameras never
    /// serve it, and the ring costs a few groups of pictures.
    wanted: bool,
    done: VecDeque<Arc<Segment>>,
    bytes: usize,
    next_sequence: u64,
    /// The segment being gathered, from its keyframe on.
    open: Option<Open>,
}

struct Open {
    start: u64,
    parts: Vec<Arc<[u8]>>,
    bytes: usize,
}

impl Segments {
    /// From now on, segments are kept.
    pub fn want(&self) {
        lock(&self.ring).wanted = true;
    }

    /// Adds the fragment of the frame the camera's source hands on; a
    /// keyframe completes the segment before it and opens the next.
    pub fn push(&self, fragment: &Arc<[u8]>, keyframe: bool) {
        let mut ring = lock(&self.ring);
        if !ring.wanted {
            return;
        }
        let completed = if keyframe {
            ring.start_segment(fragment)
        } else {
            ring.extend(fragment);
            false
        };
        drop(ring);
        if completed {
            self.added.notify_all();
        }
    }

    /// Forgets every segment (a new camera session or picture size: older
    /// segments belong to another timeline or init segment). Sequence
    /// numbers go on rising, as players expect.
    pub fn reset(&self) {
        let mut ring = lock(&self.ring);
        ring.done.clear();
        ring.bytes = 0;
        ring.open = None;
    }

    /// The kept segments, oldest first.
    pub fn list(&self) -> Vec<Arc<Segment>> {
        lock(&self.ring).done.iter().cloned().collect()
    }

    /// Segment `sequence`, while it is kept.
    pub fn get(&self, sequence: u64) -> Option<Arc<Segment>> {
        let ring = lock(&self.ring);
        ring.done.iter().find(|s| s.sequence == sequence).cloned()
    }

    /// Waits up to `timeout` for at least one complete segment; false if
    /// none came.
    pub fn wait_for_one(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ring = lock(&self.ring);
        while ring.done.is_empty() {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return false;
            };
            ring = match self.added.wait_timeout(ring, left) {
                Ok((ring, _)) => ring,
                Err(e) => e.into_inner().0,
            };
        }
        true
    }
}

impl Ring {
    /// Completes the open segment at `keyframe`'s decode time and opens the
    /// next with it; true when a segment was completed.
    fn start_segment(&mut self, keyframe: &Arc<[u8]>) -> bool {
        let Some(start) = decode_time(keyframe) else {
            self.open = None;
            return false;
        };
        let completed = match self.open.take() {
            Some(open) if start > open.start => {
                let duration = start - open.start;
                self.complete(open, duration);
                true
            }
            _ => false,
        };
        self.open = Some(Open {
            start,
            parts: vec![keyframe.clone()],
            bytes: keyframe.len(),
        });
        completed
    }

    /// Adds a frame to the open segment; a segment past the limits of a
    /// group of pictures is dropped, and nothing gathered until the next
    /// keyframe.
    fn extend(&mut self, fragment: &Arc<[u8]>) {
        let Some(open) = &mut self.open else {
            return;
        };
        if open.bytes + fragment.len() > MAX_GOP_BYTES || open.parts.len() >= MAX_GOP_FRAMES {
            self.open = None;
            return;
        }
        open.bytes += fragment.len();
        open.parts.push(fragment.clone());
    }

    fn complete(&mut self, open: Open, duration: u64) {
        let data: Arc<[u8]> = open.parts.concat().into();
        self.bytes += data.len();
        self.done.push_back(Arc::new(Segment {
            sequence: self.next_sequence,
            duration,
            data,
        }));
        self.next_sequence += 1;
        while self.done.len() > MAX_SEGMENTS || self.bytes > MAX_RING_BYTES {
            let Some(old) = self.done.pop_front() else {
                break;
            };
            self.bytes -= old.data.len();
        }
    }
}

/// The media playlist (RFC 8216, version 7 for fMP4) of `segments`, oldest
/// first: `init_uri` is the `EXT-X-MAP`, `segment_uri` names each segment
/// by its sequence number. A live playlist: no end tag.
pub fn playlist(
    segments: &[Arc<Segment>],
    init_uri: &str,
    segment_uri: impl Fn(u64) -> String,
) -> String {
    let longest = segments.iter().map(|s| s.duration).max().unwrap_or(0);
    let target = longest.div_ceil(u64::from(TIMESCALE)).max(1);
    let first = segments.first().map_or(0, |s| s.sequence);
    let mut text = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n\
         #EXT-X-MEDIA-SEQUENCE:{first}\n#EXT-X-MAP:URI=\"{init_uri}\"\n"
    );
    for s in segments {
        text.push_str(&format!(
            "#EXTINF:{},\n{}\n",
            seconds(s.duration),
            segment_uri(s.sequence)
        ));
    }
    text
}

/// 90 kHz ticks as seconds with three decimals (rounded down).
fn seconds(ticks: u64) -> String {
    let scale = u64::from(TIMESCALE);
    format!("{}.{:03}", ticks / scale, ticks % scale * 1000 / scale)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::media::fmp4::Fragmenter;

    /// Fragments of frames at `times` (90 kHz), keyframes where `keys` says.
    struct Camera {
        fragmenter: Fragmenter,
    }

    impl Camera {
        fn new() -> Camera {
            Camera {
                fragmenter: Fragmenter::new(),
            }
        }

        fn frame(&mut self, segments: &Segments, time: u64, keyframe: bool, size: usize) {
            let f = self
                .fragmenter
                .fragment(time, 3000, keyframe, &vec![0; size]);
            segments.push(&Arc::from(f), keyframe);
        }
    }

    fn wanted() -> Segments {
        let s = Segments::default();
        s.want();
        s
    }

    fn summary(s: &Segments) -> Vec<(u64, u64)> {
        s.list().iter().map(|s| (s.sequence, s.duration)).collect()
    }

    #[test]
    fn a_segment_runs_from_a_keyframe_to_the_next() {
        let s = wanted();
        let mut cam = Camera::new();
        cam.frame(&s, 0, false, 10);
        cam.frame(&s, 3000, true, 10);
        cam.frame(&s, 6000, false, 10);
        assert!(s.list().is_empty(), "no segment is complete yet");
        assert!(!s.wait_for_one(Duration::ZERO));
        cam.frame(&s, 93_000, true, 10);
        assert_eq!(summary(&s), [(0, 90_000)]);
        assert!(s.wait_for_one(Duration::ZERO));
        cam.frame(&s, 138_000, true, 10);
        assert_eq!(summary(&s), [(0, 90_000), (1, 45_000)]);
        // The frame before the first keyframe is in no segment; the two of
        // the first segment are, one after the other.
        let first = s.get(0).unwrap();
        let mut f = Fragmenter::new();
        let _ = f.fragment(0, 3000, false, &[0; 10]);
        let mut expected = f.fragment(3000, 3000, true, &[0; 10]);
        expected.extend(f.fragment(6000, 3000, false, &[0; 10]));
        assert_eq!(&first.data[..], &expected[..]);
        assert!(s.get(2).is_none());
    }

    #[test]
    fn nothing_is_kept_until_a_player_wants_it() {
        let s = Segments::default();
        let mut cam = Camera::new();
        cam.frame(&s, 0, true, 10);
        cam.frame(&s, 3000, true, 10);
        assert!(s.list().is_empty());
        s.want();
        cam.frame(&s, 6000, true, 10);
        cam.frame(&s, 9000, true, 10);
        assert_eq!(summary(&s), [(0, 3000)]);
    }

    #[test]
    fn the_ring_keeps_the_last_few_with_rising_numbers() {
        let s = wanted();
        let mut cam = Camera::new();
        for i in 0..=(MAX_SEGMENTS as u64 + 2) {
            cam.frame(&s, i * 30_000, true, 10);
        }
        let kept: Vec<u64> = s.list().iter().map(|s| s.sequence).collect();
        assert_eq!(kept, [2, 3, 4, 5]);
        assert!(s.get(1).is_none(), "evicted");
        // A new session starts afresh; numbers go on.
        s.reset();
        assert!(s.list().is_empty());
        cam.frame(&s, 900_000, true, 10);
        cam.frame(&s, 990_000, true, 10);
        assert_eq!(summary(&s), [(6, 90_000)]);
    }

    #[test]
    fn the_ring_is_bounded_in_bytes() {
        let s = wanted();
        let mut cam = Camera::new();
        let big = MAX_RING_BYTES / 3;
        for i in 0..4 {
            cam.frame(&s, i * 30_000, true, big);
        }
        // Three segments of a third each (plus their boxes) do not fit.
        let kept: Vec<u64> = s.list().iter().map(|s| s.sequence).collect();
        assert_eq!(kept, [1, 2]);
        let bytes: usize = s.list().iter().map(|s| s.data.len()).sum();
        assert!(bytes <= MAX_RING_BYTES);
    }

    #[test]
    fn a_segment_past_the_group_limits_is_dropped_until_the_next_keyframe() {
        let s = wanted();
        let mut cam = Camera::new();
        cam.frame(&s, 0, true, 10);
        for i in 1..=MAX_GOP_FRAMES as u64 {
            cam.frame(&s, i * 3000, false, 10);
        }
        cam.frame(&s, 10_000_000, true, 10);
        assert!(s.list().is_empty(), "{:?}", summary(&s));
        cam.frame(&s, 10_003_000, false, MAX_GOP_BYTES);
        cam.frame(&s, 10_006_000, true, 10);
        assert!(s.list().is_empty(), "{:?}", summary(&s));
        cam.frame(&s, 10_009_000, true, 10);
        assert_eq!(summary(&s), [(0, 3000)]);
    }

    #[test]
    fn the_playlist_lists_the_segments_with_their_durations() {
        let s = wanted();
        let mut cam = Camera::new();
        for t in [0, 90_000, 225_000, 315_000] {
            cam.frame(&s, t, true, 10);
        }
        let text = playlist(&s.list(), "hls/init.mp4?v=1", |n| format!("hls/{n}.m4s"));
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:2\n#EXT-X-MEDIA-SEQUENCE:0\n\
             #EXT-X-MAP:URI=\"hls/init.mp4?v=1\"\n\
             #EXTINF:1.000,\nhls/0.m4s\n#EXTINF:1.500,\nhls/1.m4s\n#EXTINF:1.000,\nhls/2.m4s\n"
        );
        // A fourth segment fills the ring, a fifth pushes the first out.
        cam.frame(&s, 405_000, true, 10);
        cam.frame(&s, 435_000, true, 10);
        let text = playlist(&s.list(), "i", |n| n.to_string());
        assert!(text.contains("#EXT-X-MEDIA-SEQUENCE:1\n"), "{text}");
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
    }

    #[test]
    fn the_target_duration_is_the_longest_segment_rounded_up() {
        let seg = |sequence, duration| {
            Arc::new(Segment {
                sequence,
                duration,
                data: Arc::from(&[][..]),
            })
        };
        let text = playlist(&[seg(7, 90_001), seg(8, 3000)], "i", |n| n.to_string());
        assert!(text.contains("#EXT-X-TARGETDURATION:2\n"), "{text}");
        assert!(
            text.contains("#EXTINF:1.000,\n7\n#EXTINF:0.033,\n8\n"),
            "{text}"
        );
        let empty = playlist(&[], "i", |n| n.to_string());
        assert!(empty.contains("#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n"));
    }
}
