//! JPEG frame splitting and inspection.
//!
//! The splitter follows the JPEG structure instead of looking for the first
//! `FF D9`: an EXIF thumbnail inside APP1 carries its own `FF D8 … FF D9`,
//! and a naive search would cut the real frame short at the thumbnail's end.

use memchr::memchr;
use memchr::memmem;

/// The largest frame printcam accepts from any camera.
pub const MAX_FRAME: usize = 4 * 1024 * 1024;

const SOI: [u8; 2] = [0xFF, 0xD8];

/// Input is handled in pieces of at most this size, so one huge chunk cannot
/// push the buffer far past the frame bound before the bound is checked.
const PIECE: usize = 64 * 1024;

/// Buffer capacity kept between frames regardless of frame size.
const KEEP_CAPACITY: usize = 256 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Between segments: `pos` points at where the next marker must start
    /// (possibly beyond the data received so far, while skipping a segment).
    Markers,
    /// Inside entropy-coded data after an SOS header.
    Entropy,
}

/// What one scan step found.
enum Step {
    /// The frame needs more bytes.
    More,
    /// The frame ends just before this buffer offset.
    Done(usize),
    /// The structure is broken at this offset; hunt for the next SOI from there.
    Broken(usize),
}

/// Splits a byte stream (a multipart body, ffmpeg's stdout, anything) into
/// complete JPEGs, whatever lies between them. Memory stays bounded.
pub struct Splitter {
    max_frame: usize,
    /// The frame being assembled, starting with its SOI; empty between frames.
    buf: Vec<u8>,
    /// Where scanning resumes in `buf`, so a push never rescans old bytes.
    pos: usize,
    mode: Mode,
    /// Between frames: the previous input ended with `FF`, which may be the
    /// first half of an SOI.
    pending_ff: bool,
    oversized: u64,
}

impl Splitter {
    pub fn new(max_frame: usize) -> Self {
        Splitter {
            max_frame,
            buf: Vec::new(),
            pos: 0,
            mode: Mode::Markers,
            pending_ff: false,
            oversized: 0,
        }
    }

    /// Feeds one chunk; pushes every JPEG it completes onto `out`, in order.
    pub fn push(&mut self, chunk: &[u8], out: &mut Vec<Vec<u8>>) {
        for piece in chunk.chunks(PIECE) {
            self.push_piece(piece, out);
        }
    }

    /// Bytes held waiting for the rest of a frame.
    pub fn buffered(&self) -> usize {
        self.buf.len()
    }

    /// Frames thrown away because they outgrew the bound.
    pub fn oversized(&self) -> u64 {
        self.oversized
    }

    fn in_frame(&self) -> bool {
        !self.buf.is_empty()
    }

    fn push_piece(&mut self, input: &[u8], out: &mut Vec<Vec<u8>>) {
        if self.in_frame() {
            self.buf.extend_from_slice(input);
        } else if !self.start_frame(input) {
            return;
        }
        self.scan(out);
    }

    /// Looks for an SOI in `input` (garbage is never copied). Returns true if
    /// a frame was started in `buf`.
    fn start_frame(&mut self, input: &[u8]) -> bool {
        if self.pending_ff && input.first() == Some(&SOI[1]) {
            self.pending_ff = false;
            self.buf.push(SOI[0]);
            self.buf.extend_from_slice(input);
        } else if let Some(i) = memmem::find(input, &SOI) {
            self.pending_ff = false;
            self.buf.extend_from_slice(&input[i..]);
        } else {
            self.pending_ff = input.last() == Some(&0xFF);
            return false;
        }
        self.pos = SOI.len();
        self.mode = Mode::Markers;
        true
    }

    fn scan(&mut self, out: &mut Vec<Vec<u8>>) {
        while self.in_frame() {
            match self.step() {
                Step::Done(end) => {
                    if end > self.max_frame {
                        self.oversized += 1;
                    } else {
                        out.push(self.buf[..end].to_vec());
                    }
                    self.restart_at(end);
                    self.limit_capacity(end);
                }
                Step::Broken(at) => self.restart_at(at),
                Step::More if self.buf.len() > self.max_frame => {
                    self.oversized += 1;
                    let at = self.pos.min(self.buf.len());
                    self.restart_at(at);
                }
                Step::More => break,
            }
        }
    }

    /// Drops everything before the next SOI at or after `at` (or everything,
    /// if there is none) and starts a new frame there.
    fn restart_at(&mut self, at: usize) {
        match memmem::find(&self.buf[at..], &SOI) {
            Some(i) => {
                self.buf.drain(..at + i);
                self.pos = SOI.len();
                self.mode = Mode::Markers;
            }
            None => {
                self.pending_ff = self.buf.last() == Some(&0xFF);
                self.buf.clear();
                self.pos = 0;
                self.mode = Mode::Markers;
            }
        }
    }

    /// One oversized or unusually large frame must not pin its memory forever.
    fn limit_capacity(&mut self, frame_len: usize) {
        let keep = KEEP_CAPACITY.max(frame_len.saturating_mul(2));
        if self.buf.capacity() > keep {
            self.buf.shrink_to(keep);
        }
    }

    fn step(&mut self) -> Step {
        loop {
            let step = match self.mode {
                Mode::Markers => self.step_markers(),
                Mode::Entropy => self.step_entropy(),
            };
            // `None` means the mode changed: keep going in the new mode.
            if let Some(step) = step {
                return step;
            }
        }
    }

    /// Walks marker segments by their lengths.
    fn step_markers(&mut self) -> Option<Step> {
        let buf = &self.buf;
        loop {
            let at = self.pos;
            if at >= buf.len() {
                return Some(Step::More);
            }
            if buf[at] != 0xFF {
                return Some(Step::Broken(at));
            }
            // Any number of fill bytes (FF) may precede a marker.
            let Some(fill) = buf[at + 1..].iter().position(|&b| b != 0xFF) else {
                self.pos = buf.len() - 1;
                return Some(Step::More);
            };
            let marker_at = at + fill; // the FF right before the marker code
            let code = buf[marker_at + 1];
            self.pos = marker_at;
            match code {
                0xD9 => return Some(Step::Done(marker_at + 2)),
                0xD8 => return Some(Step::Broken(marker_at)),
                0x00 => return Some(Step::Broken(marker_at + 1)),
                0x01 | 0xD0..=0xD7 => self.pos = marker_at + 2,
                _ => {
                    if marker_at + 3 >= buf.len() {
                        return Some(Step::More);
                    }
                    let len =
                        usize::from(u16::from_be_bytes([buf[marker_at + 2], buf[marker_at + 3]]));
                    if len < 2 {
                        return Some(Step::Broken(marker_at + 2));
                    }
                    self.pos = marker_at + 2 + len;
                    if code == SOS {
                        self.mode = Mode::Entropy;
                        return None;
                    }
                }
            }
        }
    }

    /// Scans entropy-coded data for the marker that ends it.
    fn step_entropy(&mut self) -> Option<Step> {
        let buf = &self.buf;
        loop {
            let from = self.pos;
            if from >= buf.len() {
                return Some(Step::More);
            }
            let Some(i) = memchr(0xFF, &buf[from..]) else {
                self.pos = buf.len();
                return Some(Step::More);
            };
            let ff = from + i;
            let Some(&code) = buf.get(ff + 1) else {
                self.pos = ff;
                return Some(Step::More);
            };
            match code {
                // Stuffing and restart markers belong to the scan data.
                0x00 | 0xD0..=0xD7 => self.pos = ff + 2,
                0xFF => self.pos = ff + 1,
                0xD9 => return Some(Step::Done(ff + 2)),
                0xD8 => return Some(Step::Broken(ff)),
                // Another segment (DHT, SOS of a progressive JPEG, …).
                _ => {
                    self.pos = ff;
                    self.mode = Mode::Markers;
                    return None;
                }
            }
        }
    }
}

/// The marker that starts a scan: the header ends with its segment.
pub const SOS: u8 = 0xDA;

/// One marker segment of a JPEG's header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    pub code: u8,
    /// The `FF` right before the marker code (after any fill bytes).
    pub start: usize,
    /// Just past the segment (for SOS: past the scan header).
    pub end: usize,
}

impl Segment {
    /// What follows the marker and length.
    pub fn body<'a>(&self, jpeg: &'a [u8]) -> &'a [u8] {
        jpeg.get(self.start + 4..self.end).unwrap_or(&[])
    }
}

/// The marker segments after SOI, by their lengths, up to and including
/// the first SOS. Ends early, without SOS, where the header is broken or
/// cut short, or when `jpeg` does not start with SOI.
pub fn header_segments(jpeg: &[u8]) -> impl Iterator<Item = Segment> + '_ {
    let mut at = jpeg.starts_with(&SOI).then_some(SOI.len());
    std::iter::from_fn(move || {
        let segment = next_segment(jpeg, at?);
        at = segment.filter(|s| s.code != SOS).map(|s| s.end);
        segment
    })
}

fn next_segment(jpeg: &[u8], mut at: usize) -> Option<Segment> {
    loop {
        if *jpeg.get(at)? != 0xFF {
            return None;
        }
        let fill = jpeg.get(at + 1..)?.iter().position(|&b| b != 0xFF)?;
        let marker_at = at + fill;
        let code = jpeg[marker_at + 1];
        match code {
            // Markers without a length.
            0x01 | 0xD0..=0xD7 => {
                at = marker_at + 2;
                continue;
            }
            // Not a marker, another image, or the end before any scan.
            0x00 | 0xD8 | 0xD9 => return None,
            _ => {}
        }
        let len_bytes = jpeg.get(marker_at + 2..marker_at + 4)?;
        let len = usize::from(u16::from_be_bytes([len_bytes[0], len_bytes[1]]));
        let end = marker_at + 2 + len;
        if len < 2 || end > jpeg.len() {
            return None;
        }
        return Some(Segment {
            code,
            start: marker_at,
            end,
        });
    }
}

/// Width and height from the first SOF0/SOF1/SOF2 marker.
pub fn resolution(jpeg: &[u8]) -> Option<(u16, u16)> {
    let sof = header_segments(jpeg)
        .take_while(|s| s.code != SOS)
        .find(|s| matches!(s.code, 0xC0..=0xC2))?;
    // Segment: precision(1) height(2) width(2) …
    let seg = sof.body(jpeg);
    if seg.len() < 5 {
        return None;
    }
    let height = u16::from_be_bytes([seg[1], seg[2]]);
    let width = u16::from_be_bytes([seg[3], seg[4]]);
    (width > 0 && height > 0).then_some((width, height))
}

/// True if `b` starts with SOI (`FF D8`) and ends with EOI (`FF D9`).
pub fn looks_complete(b: &[u8]) -> bool {
    b.len() >= 4 && b.starts_with(&SOI) && b.ends_with(&[0xFF, 0xD9])
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const F1: &[u8] = include_bytes!("../tests/data/f1.jpg");
    const F2: &[u8] = include_bytes!("../tests/data/f2.jpg");
    const F3: &[u8] = include_bytes!("../tests/data/f3.jpg");
    const BASE: &[u8] = include_bytes!("../tests/data/base.jpg");
    const PROGRESSIVE: &[u8] = include_bytes!("../tests/data/progressive.jpg");
    const THUMB: &[u8] = include_bytes!("../tests/data/thumb.jpg");

    fn real_frames() -> Vec<Vec<u8>> {
        vec![
            F1.to_vec(),
            F2.to_vec(),
            PROGRESSIVE.to_vec(),
            with_exif_thumbnail(F3),
            BASE.to_vec(),
        ]
    }

    /// `frame` with an APP1 EXIF segment right after SOI that carries a whole
    /// JPEG thumbnail, as many cameras and phones write it.
    fn with_exif_thumbnail(frame: &[u8]) -> Vec<u8> {
        let mut payload = b"Exif\0\0".to_vec();
        payload.extend_from_slice(b"MM\0\x2a\0\0\0\x08"); // TIFF header
        payload.extend_from_slice(THUMB);
        let len = u16::try_from(payload.len() + 2).unwrap();
        let mut out = SOI.to_vec();
        out.extend_from_slice(&[0xFF, 0xE1]);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&payload);
        out.extend_from_slice(&frame[2..]);
        out
    }

    fn split_all(chunks: &[&[u8]], max: usize) -> (Vec<Vec<u8>>, Splitter) {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
            assert!(s.buffered() <= max);
        }
        (out, s)
    }

    fn split(stream: &[u8]) -> Vec<Vec<u8>> {
        split_all(&[stream], MAX_FRAME).0
    }

    #[test]
    fn one_frame_whole() {
        assert_eq!(split(F1), vec![F1.to_vec()]);
    }

    #[test]
    fn frame_split_at_every_boundary() {
        let mut stream = b"junk".to_vec();
        stream.extend_from_slice(F1);
        stream.extend_from_slice(b"\r\n--x\r\n");
        stream.extend_from_slice(PROGRESSIVE);
        for cut in 0..=stream.len() {
            let (a, b) = stream.split_at(cut);
            let (out, s) = split_all(&[a, b], MAX_FRAME);
            assert_eq!(out, vec![F1.to_vec(), PROGRESSIVE.to_vec()], "cut at {cut}");
            assert_eq!(s.buffered(), 0);
        }
    }

    #[test]
    fn one_byte_at_a_time() {
        let frames = real_frames();
        let stream: Vec<u8> = frames.concat();
        let chunks: Vec<&[u8]> = stream.chunks(1).collect();
        let (out, s) = split_all(&chunks, MAX_FRAME);
        assert_eq!(out, frames);
        assert_eq!(s.oversized(), 0);
    }

    #[test]
    fn several_frames_in_one_chunk() {
        let stream = [F1, F2, F3].concat();
        assert_eq!(split(&stream), vec![F1.to_vec(), F2.to_vec(), F3.to_vec()]);
    }

    #[test]
    fn garbage_between_frames_is_dropped() {
        let garbage: &[u8] = &[0xFF, 0x00, 0xFF, 0xFF, 0xD9, 0x12, 0xFF];
        let stream = [garbage, F1, garbage, garbage, F2, garbage].concat();
        let (out, s) = split_all(&[&stream], MAX_FRAME);
        assert_eq!(out, vec![F1.to_vec(), F2.to_vec()]);
        assert_eq!(s.buffered(), 0);
    }

    #[test]
    fn multipart_body_with_headers() {
        let mut body = Vec::new();
        for f in [F1, F2, F3] {
            body.extend_from_slice(
                format!(
                    "--odd_Boundary-42\r\nContent-Type: image/jpeg\r\nContent-Length: {}\r\n\r\n",
                    f.len()
                )
                .as_bytes(),
            );
            body.extend_from_slice(f);
            body.extend_from_slice(b"\r\n");
        }
        let chunks: Vec<&[u8]> = body.chunks(1000).collect();
        let (out, _) = split_all(&chunks, MAX_FRAME);
        assert_eq!(out, vec![F1.to_vec(), F2.to_vec(), F3.to_vec()]);
    }

    #[test]
    fn start_without_end_stays_bounded() {
        let max = 10_000;
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        s.push(&F1[..F1.len() - 2], &mut out);
        // Entropy-like data that never ends the frame.
        let filler = vec![0x55u8; 3000];
        for _ in 0..20 {
            s.push(&filler, &mut out);
            assert!(s.buffered() <= max);
        }
        assert!(out.is_empty());
        assert_eq!(s.oversized(), 1);
        // It recovers for the next frame.
        s.push(F2, &mut out);
        assert_eq!(out, vec![F2.to_vec()]);
    }

    #[test]
    fn frame_larger_than_bound_is_counted_and_skipped() {
        let stream = [F1, F2].concat();
        let max = F1.len().min(F2.len()) - 1;
        let (out, s) = split_all(&[&stream], max);
        assert!(out.is_empty());
        assert_eq!(s.oversized(), 2);
        // A frame exactly at the bound is kept.
        let (out, _) = split_all(&[F1], F1.len());
        assert_eq!(out, vec![F1.to_vec()]);
    }

    #[test]
    fn exif_thumbnail_does_not_cut_the_frame() {
        let framed = with_exif_thumbnail(F1);
        assert_eq!(split(&framed), vec![framed.clone()]);
        assert_eq!(resolution(&framed), Some((320, 240)));
    }

    #[test]
    fn truncated_frame_is_dropped_and_next_found() {
        let stream = [&F1[..3000], F2].concat();
        assert_eq!(split(&stream), vec![F2.to_vec()]);
    }

    #[test]
    fn resolution_of_sof0_sof1_sof2() {
        assert_eq!(resolution(F1), Some((320, 240)));
        assert_eq!(resolution(BASE), Some((200, 150)));
        assert_eq!(resolution(PROGRESSIVE), Some((200, 150)));
        let sof0 = memmem::find(BASE, &[0xFF, 0xC0]).unwrap();
        let mut sof1 = BASE.to_vec();
        sof1[sof0 + 1] = 0xC1;
        assert_eq!(resolution(&sof1), Some((200, 150)));
    }

    #[test]
    fn resolution_rejects_malformed() {
        assert_eq!(resolution(b""), None);
        assert_eq!(resolution(b"\xFF\xD8"), None);
        assert_eq!(resolution(b"\xFF\xD8\xFF"), None);
        assert_eq!(resolution(b"\xFF\xD8\xFF\xC0\x00"), None);
        assert_eq!(resolution(b"\xFF\xD8\xFF\xC0\x00\x05\x08\x00"), None);
        assert_eq!(resolution(b"\xFF\xD8\xFF\xE0\x00\x01"), None);
        assert_eq!(resolution(b"\xFF\xD8\xFF\xD9"), None);
        assert_eq!(resolution(&F1[..100]), None);
        for cut in 0..F1.len() {
            let _ = resolution(&F1[..cut]);
        }
    }

    #[test]
    fn looks_complete_checks_both_ends() {
        assert!(looks_complete(F1));
        assert!(!looks_complete(&F1[1..]));
        assert!(!looks_complete(&F1[..F1.len() - 1]));
        assert!(!looks_complete(b"\xFF\xD8\xD9"));
        assert!(!looks_complete(b"<html>"));
    }

    fn stream_of(frames: &[Vec<u8>], gaps: &[Vec<u8>]) -> Vec<u8> {
        let mut stream = Vec::new();
        for (i, f) in frames.iter().enumerate() {
            // Gaps hold no FF, so they cannot start a frame.
            stream.extend(gaps[i % gaps.len()].iter().map(|&b| b & 0x7F));
            stream.extend_from_slice(f);
        }
        stream
    }

    fn chunked(stream: &[u8], cuts: &[usize]) -> Vec<Vec<u8>> {
        let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (stream.len() + 1)).collect();
        cuts.sort_unstable();
        let mut chunks = Vec::new();
        let mut from = 0;
        for c in cuts.into_iter().chain([stream.len()]) {
            chunks.push(stream[from..c].to_vec());
            from = c;
        }
        chunks
    }

    fn check_invariants(chunks: &[Vec<u8>], max: usize) -> Vec<Vec<u8>> {
        let mut s = Splitter::new(max);
        let mut out = Vec::new();
        for c in chunks {
            s.push(c, &mut out);
            assert!(s.buffered() <= max, "{} > {max}", s.buffered());
        }
        for f in &out {
            assert!(looks_complete(f));
            assert!(f.len() <= max);
        }
        out
    }

    proptest! {
        #[test]
        fn random_chunking_yields_the_frames(
            order in proptest::collection::vec(0usize..5, 1..6),
            gaps in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..4),
            cuts in proptest::collection::vec(any::<usize>(), 0..30),
        ) {
            let all = real_frames();
            let frames: Vec<Vec<u8>> = order.iter().map(|&i| all[i].clone()).collect();
            let stream = stream_of(&frames, &gaps);
            let out = check_invariants(&chunked(&stream, &cuts), MAX_FRAME);
            prop_assert_eq!(out, frames);
        }

        #[test]
        fn random_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..5000),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            max in 4usize..3000,
        ) {
            check_invariants(&chunked(&data, &cuts), max);
            let _ = resolution(&data);
        }

        #[test]
        fn marker_soup_never_panics(
            parts in proptest::collection::vec(
                prop_oneof![
                    Just(vec![0xFF, 0xD8]),
                    Just(vec![0xFF, 0xD9]),
                    Just(vec![0xFF, 0xDA, 0x00, 0x02]),
                    Just(vec![0xFF, 0xE1, 0x00, 0x10]),
                    Just(vec![0xFF, 0xC0, 0x00, 0x0B, 8, 0, 9, 0, 7]),
                    Just(vec![0xFF, 0x00]),
                    Just(vec![0xFF]),
                    Just(vec![0xFF, 0xD3]),
                    proptest::collection::vec(any::<u8>(), 0..8),
                ],
                0..200,
            ),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
            max in 4usize..500,
        ) {
            let data = parts.concat();
            check_invariants(&chunked(&data, &cuts), max);
            let _ = resolution(&data);
        }

        #[test]
        fn corrupted_frames_never_panic(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..20),
        ) {
            let mut stream = real_frames().concat();
            let n = stream.len();
            for (at, b) in flips {
                stream[at % n] = b;
            }
            let out = check_invariants(&chunked(&stream, &cuts), 8000);
            for f in &out {
                let _ = resolution(f);
            }
            let _ = resolution(&stream);
        }
    }
}
