//! The EXIF Orientation tag in JPEG frames: browsers turn and mirror an
//! `<img>` by it, every part of a `multipart/x-mixed-replace` stream too,
//! so a camera mounted sideways is shown upright without decoding a pixel.

use crate::jpeg::{header_segments, looks_complete, Segment, SOS};
use crate::orientation::Orientation;
use std::ops::Range;

const APP0: u8 = 0xE0;
const APP1: u8 = 0xE1;
const EXIF_ID: &[u8; 6] = b"Exif\0\0";

/// The bytes of the APP1 segment `segment` makes.
pub const SEGMENT_LEN: usize = 36;

/// An APP1 Exif segment holding only the Orientation tag: a big-endian
/// TIFF header whose one IFD has one entry (tag 0x0112, SHORT, count 1)
/// and no next IFD.
pub fn segment(o: Orientation) -> [u8; SEGMENT_LEN] {
    const LEN: u8 = (SEGMENT_LEN - 2) as u8;
    let v = o.exif_value();
    #[rustfmt::skip]
    let bytes = [
        0xFF, APP1, 0x00, LEN,
        b'E', b'x', b'i', b'f', 0, 0,
        // TIFF header: big-endian, 42, IFD0 at offset 8.
        b'M', b'M', 0x00, 0x2A, 0, 0, 0, 8,
        // IFD0: one entry.
        0, 1,
        // Orientation, SHORT, count 1, the value left-aligned in 4 bytes.
        0x01, 0x12, 0, 3, 0, 0, 0, 1, 0, v, 0, 0,
        // No next IFD.
        0, 0, 0, 0,
    ];
    bytes
}

/// Puts `o` into the frame: replaces its first APP1 Exif segment, or adds
/// one after SOI (after a leading JFIF APP0, which must come first). A
/// frame that is not a whole JPEG with a readable header is left as it is.
/// Returns whether the frame was changed.
pub fn set_orientation(jpeg: &mut Vec<u8>, o: Orientation) -> bool {
    let Some(at) = place(jpeg) else {
        return false;
    };
    // In place: the tail moves once (memmove), after at most one
    // reallocation for the 36 bytes more.
    let (len, new_len) = (jpeg.len(), jpeg.len() - at.len() + SEGMENT_LEN);
    if new_len > len {
        jpeg.resize(new_len, 0);
    }
    jpeg.copy_within(at.end..len, at.start + SEGMENT_LEN);
    jpeg.truncate(new_len);
    jpeg[at.start..at.start + SEGMENT_LEN].copy_from_slice(&segment(o));
    true
}

/// The bytes the segment replaces (empty for an insertion), once the whole
/// header up to the first scan has been read.
fn place(jpeg: &[u8]) -> Option<Range<usize>> {
    if !looks_complete(jpeg) {
        return None;
    }
    let mut insert_at = 2;
    let mut leading_app0 = true;
    let mut exif = None;
    for s in header_segments(jpeg) {
        if s.code == SOS {
            return Some(exif.unwrap_or(insert_at..insert_at));
        }
        leading_app0 &= s.code == APP0;
        if leading_app0 {
            insert_at = s.end;
        }
        if exif.is_none() && is_exif(jpeg, &s) {
            exif = Some(s.start..s.end);
        }
    }
    None
}

fn is_exif(jpeg: &[u8], s: &Segment) -> bool {
    s.code == APP1 && s.body(jpeg).starts_with(EXIF_ID)
}

/// The Orientation value of the frame's first APP1 Exif segment, when it
/// is one `segment` wrote; for tests and checks.
pub fn orientation_value(jpeg: &[u8]) -> Option<u8> {
    let s = header_segments(jpeg)
        .take_while(|s| s.code != SOS)
        .find(|s| is_exif(jpeg, s))?;
    let body = s.body(jpeg);
    let entry = body.get(16..26)?;
    (entry[..8] == [0x01, 0x12, 0, 3, 0, 0, 0, 1]).then_some(entry[9])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orientation::{Flip, Rotation};
    use proptest::prelude::*;

    const F1: &[u8] = include_bytes!("../../tests/data/f1.jpg");
    const PROGRESSIVE: &[u8] = include_bytes!("../../tests/data/progressive.jpg");

    fn turned(rotation: Rotation) -> Orientation {
        Orientation {
            rotation,
            flip: Flip::None,
        }
    }

    /// `F1` without its JFIF APP0: SOI, then a comment.
    fn without_app0() -> Vec<u8> {
        let app0 = header_segments(F1).next().unwrap();
        assert_eq!(app0.code, APP0);
        let mut out = F1[..2].to_vec();
        out.extend_from_slice(&F1[app0.end..]);
        out
    }

    /// An APP1 Exif segment as a camera might send it: little-endian, two
    /// entries, Orientation 3 among them.
    fn camera_exif() -> Vec<u8> {
        let mut body = EXIF_ID.to_vec();
        body.extend_from_slice(b"II\x2a\0\x08\0\0\0");
        body.extend_from_slice(&[2, 0]);
        body.extend_from_slice(&[0x0f, 0x01, 2, 0, 4, 0, 0, 0, b'B', b'L', b'0', 0]);
        body.extend_from_slice(&[0x12, 0x01, 3, 0, 1, 0, 0, 0, 3, 0, 0, 0]);
        body.extend_from_slice(&[0, 0, 0, 0]);
        let mut seg = vec![0xFF, APP1];
        seg.extend_from_slice(&u16::try_from(body.len() + 2).unwrap().to_be_bytes());
        seg.extend_from_slice(&body);
        seg
    }

    fn codes(jpeg: &[u8]) -> Vec<u8> {
        header_segments(jpeg).map(|s| s.code).collect()
    }

    #[test]
    fn the_segment_for_every_value_is_a_tiff_with_one_orientation_entry() {
        let mut seen = Vec::new();
        for o in Orientation::all() {
            let seg = segment(o);
            let v = o.exif_value();
            assert_eq!(&seg[..2], &[0xFF, 0xE1]);
            assert_eq!(usize::from(u16::from_be_bytes([seg[2], seg[3]])), 34);
            assert_eq!(&seg[4..10], b"Exif\0\0");
            let tiff = &seg[10..];
            assert_eq!(&tiff[..4], b"MM\0\x2a", "big-endian, 42");
            let ifd0 = u32::from_be_bytes([tiff[4], tiff[5], tiff[6], tiff[7]]) as usize;
            assert_eq!(ifd0, 8);
            let ifd = &tiff[ifd0..];
            assert_eq!(u16::from_be_bytes([ifd[0], ifd[1]]), 1, "one entry");
            let e = &ifd[2..14];
            assert_eq!(u16::from_be_bytes([e[0], e[1]]), 0x0112, "Orientation");
            assert_eq!(u16::from_be_bytes([e[2], e[3]]), 3, "SHORT");
            assert_eq!(u32::from_be_bytes([e[4], e[5], e[6], e[7]]), 1, "count");
            // A SHORT sits in the first two bytes of the value field.
            assert_eq!(u16::from_be_bytes([e[8], e[9]]), u16::from(v));
            assert_eq!(&e[10..12], &[0, 0]);
            assert_eq!(&ifd[14..18], &[0, 0, 0, 0], "no next IFD");
            assert_eq!(ifd0 + 18, tiff.len());
            seen.push(v);
        }
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (1..=8).collect::<Vec<u8>>());
    }

    #[test]
    fn inserted_right_after_soi() {
        let plain = without_app0();
        let mut jpeg = plain.clone();
        assert!(set_orientation(&mut jpeg, turned(Rotation::R90)));
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(&jpeg[2..2 + SEGMENT_LEN], &segment(turned(Rotation::R90)));
        assert_eq!(&jpeg[2 + SEGMENT_LEN..], &plain[2..]);
        assert_eq!(orientation_value(&jpeg), Some(6));
        assert_eq!(
            crate::jpeg::resolution(&jpeg),
            crate::jpeg::resolution(&plain)
        );
    }

    #[test]
    fn a_jfif_app0_stays_first() {
        let mut jpeg = F1.to_vec();
        assert!(set_orientation(&mut jpeg, turned(Rotation::R270)));
        assert_eq!(jpeg.len(), F1.len() + SEGMENT_LEN);
        let first = header_segments(&jpeg).next().unwrap();
        assert_eq!(first.code, APP0);
        assert!(first.body(&jpeg).starts_with(b"JFIF\0"));
        assert_eq!(&jpeg[..first.end], &F1[..first.end]);
        assert_eq!(
            &jpeg[first.end..first.end + SEGMENT_LEN],
            &segment(turned(Rotation::R270))
        );
        assert_eq!(&jpeg[first.end + SEGMENT_LEN..], &F1[first.end..]);
        assert_eq!(orientation_value(&jpeg), Some(8));
    }

    #[test]
    fn an_existing_exif_segment_is_replaced() {
        let mut with_exif = F1[..20].to_vec();
        with_exif.extend_from_slice(&camera_exif());
        with_exif.extend_from_slice(&F1[20..]);
        let before = codes(&with_exif);
        let mirrored = Orientation {
            rotation: Rotation::R90,
            flip: Flip::Horizontal,
        };
        let mut jpeg = with_exif.clone();
        assert!(set_orientation(&mut jpeg, mirrored));
        assert_eq!(codes(&jpeg), before, "one APP1, where it was");
        assert_eq!(orientation_value(&jpeg), Some(7));
        assert_eq!(
            jpeg.len(),
            with_exif.len() - camera_exif().len() + SEGMENT_LEN
        );
        assert_eq!(&jpeg[..20], &F1[..20]);
        assert_eq!(&jpeg[20 + SEGMENT_LEN..], &F1[20..]);
        // Setting it again replaces ours.
        assert!(set_orientation(&mut jpeg, turned(Rotation::R180)));
        assert_eq!(orientation_value(&jpeg), Some(3));
        assert_eq!(codes(&jpeg), before);
    }

    #[test]
    fn a_progressive_frame_is_handled_too() {
        let mut jpeg = PROGRESSIVE.to_vec();
        assert!(set_orientation(&mut jpeg, turned(Rotation::R90)));
        assert_eq!(orientation_value(&jpeg), Some(6));
    }

    #[test]
    fn what_is_not_a_whole_jpeg_is_left_alone() {
        let cases: Vec<Vec<u8>> = vec![
            Vec::new(),
            b"not a jpeg".to_vec(),
            vec![0xFF, 0xD8],
            vec![0xFF, 0xD8, 0xFF, 0xD9],
            F1[..F1.len() - 1].to_vec(),
            F1[1..].to_vec(),
            // The header cut short, an end marker glued on.
            [&F1[..30], &[0xFF, 0xD9][..]].concat(),
        ];
        for case in cases {
            let mut jpeg = case.clone();
            assert!(
                !set_orientation(&mut jpeg, turned(Rotation::R90)),
                "{case:?}"
            );
            assert_eq!(jpeg, case);
        }
    }

    proptest! {
        #[test]
        fn any_prefix_of_a_frame_passes_unchanged(cut in 0usize..F1.len()) {
            let mut jpeg = F1[..cut].to_vec();
            prop_assert!(!set_orientation(&mut jpeg, turned(Rotation::R90)));
            prop_assert_eq!(&jpeg[..], &F1[..cut]);
        }

        #[test]
        fn random_bytes_never_panic(
            data in proptest::collection::vec(any::<u8>(), 0..300),
            soi in any::<bool>(),
        ) {
            let mut input = if soi { vec![0xFF, 0xD8] } else { Vec::new() };
            input.extend_from_slice(&data);
            let mut jpeg = input.clone();
            if !set_orientation(&mut jpeg, turned(Rotation::R180)) {
                prop_assert_eq!(jpeg, input);
            }
        }

        #[test]
        fn corrupted_frames_never_panic_and_change_only_the_header(
            flips in proptest::collection::vec((any::<usize>(), any::<u8>()), 1..10),
            o in (0usize..12),
        ) {
            let mut input = F1.to_vec();
            for (at, b) in flips {
                let i = at % input.len();
                input[i] = b;
            }
            let o = Orientation::all().nth(o).unwrap();
            let mut jpeg = input.clone();
            if set_orientation(&mut jpeg, o) {
                prop_assert_eq!(orientation_value(&jpeg), Some(o.exif_value()));
                prop_assert!(jpeg.ends_with(&input[input.len() - 100..]));
            } else {
                prop_assert_eq!(jpeg, input);
            }
        }
    }
}
