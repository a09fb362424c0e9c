//! Fragmented MP4 for one H.264 track: an init segment (`ftyp` + `moov`
//! with empty sample tables) and then one `moof` + `mdat` per frame, laid
//! out as ffmpeg writes them with `-movflags
//! frag_every_frame+empty_moov+default_base_moof`, so that a browser's
//! `<video>` or MediaSource can start at any keyframe fragment.

use super::h264::Sps;
use super::MediaError;

/// Media time units per second: the RTP clock, so frame times pass through.
pub const TIMESCALE: u32 = 90_000;

const TRACK_ID: u32 = 1;

/// Sample flags (ISO 14496-12 8.8.3.1): a keyframe depends on no other
/// sample; any other frame depends on others and is not a sync sample.
const SYNC_SAMPLE: u32 = 0x0200_0000;
const NON_SYNC_SAMPLE: u32 = 0x0101_0000;

/// How the picture is turned for display, clockwise (a `tkhd` matrix; the
/// pixels stay as they are).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Rotation {
    #[default]
    None,
    Cw90,
    Cw180,
    Cw270,
}

impl Rotation {
    pub fn from_degrees(degrees: u32) -> Option<Rotation> {
        match degrees {
            0 => Some(Rotation::None),
            90 => Some(Rotation::Cw90),
            180 => Some(Rotation::Cw180),
            270 => Some(Rotation::Cw270),
            _ => None,
        }
    }

    /// a, b, c, d, tx, ty of the display matrix in 16.16 fixed point: a
    /// point (x, y) of a `width` x `height` picture is shown at
    /// (a*x + c*y + tx, b*x + d*y + ty), y pointing down. The translation
    /// brings the turned picture back to the origin, as phones write it.
    fn matrix(self, width: u32, height: u32) -> [i32; 6] {
        const ONE: i32 = 0x1_0000;
        // Sizes are at most 8192 (Sps::parse), so they fit 16.16.
        let (w, h) = ((width << 16) as i32, (height << 16) as i32);
        match self {
            Rotation::None => [ONE, 0, 0, ONE, 0, 0],
            Rotation::Cw90 => [0, ONE, -ONE, 0, h, 0],
            Rotation::Cw180 => [-ONE, 0, 0, -ONE, w, h],
            Rotation::Cw270 => [0, -ONE, ONE, 0, 0, w],
        }
    }
}

/// An H.264 track's parameter sets with the SPS fields checked once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VideoTrack {
    sps: Vec<u8>,
    pps: Vec<u8>,
    info: Sps,
}

impl VideoTrack {
    pub fn new(sps: &[u8], pps: &[u8]) -> Result<VideoTrack, MediaError> {
        let info = Sps::parse(sps)?;
        if pps.is_empty() || pps.len() > usize::from(u16::MAX) || sps.len() > usize::from(u16::MAX)
        {
            return Err(MediaError::new("PPS", "missing or too long"));
        }
        Ok(VideoTrack {
            sps: sps.to_vec(),
            pps: pps.to_vec(),
            info,
        })
    }

    pub fn sps(&self) -> &Sps {
        &self.info
    }

    /// For a `type="video/mp4; codecs=..."`.
    pub fn codec_string(&self) -> String {
        self.info.codec_string()
    }

    /// `ftyp` and `moov`: what a player needs before the first fragment.
    pub fn init_segment(&self, rotation: Rotation) -> Vec<u8> {
        let mut out = Vec::with_capacity(800);
        boxed(&mut out, b"ftyp", |b| {
            b.extend_from_slice(b"iso5");
            put_u32(b, 512);
            b.extend_from_slice(b"iso5iso6mp41");
        });
        boxed(&mut out, b"moov", |b| {
            mvhd(b);
            boxed(b, b"trak", |b| {
                self.tkhd(b, rotation);
                boxed(b, b"mdia", |b| self.mdia(b));
            });
            boxed(b, b"mvex", |b| {
                full_box(b, b"trex", 0, |b| {
                    put_u32(b, TRACK_ID);
                    put_u32(b, 1); // sample description index
                    put_u32(b, 0); // duration, size, flags: set per fragment
                    put_u32(b, 0);
                    put_u32(b, 0);
                });
            });
        });
        out
    }

    fn tkhd(&self, b: &mut Vec<u8>, rotation: Rotation) {
        // Flags: track enabled and in the movie.
        full_box(b, b"tkhd", 3, |b| {
            put_u32(b, 0); // creation time
            put_u32(b, 0); // modification time
            put_u32(b, TRACK_ID);
            put_u32(b, 0);
            put_u32(b, 0); // duration: unknown, live
            b.extend_from_slice(&[0; 8]);
            b.extend_from_slice(&[0; 8]); // layer, group, volume, reserved
            put_matrix(b, rotation.matrix(self.info.width, self.info.height));
            put_u32(b, self.info.width << 16);
            put_u32(b, self.info.height << 16);
        });
    }

    fn mdia(&self, b: &mut Vec<u8>) {
        full_box(b, b"mdhd", 0, |b| {
            put_u32(b, 0);
            put_u32(b, 0);
            put_u32(b, TIMESCALE);
            put_u32(b, 0);
            put_u16(b, 0x55C4); // language "und"
            put_u16(b, 0);
        });
        full_box(b, b"hdlr", 0, |b| {
            put_u32(b, 0);
            b.extend_from_slice(b"vide");
            b.extend_from_slice(&[0; 12]);
            b.extend_from_slice(b"VideoHandler\0");
        });
        boxed(b, b"minf", |b| {
            full_box(b, b"vmhd", 1, |b| b.extend_from_slice(&[0; 8]));
            boxed(b, b"dinf", |b| {
                full_box(b, b"dref", 0, |b| {
                    put_u32(b, 1);
                    // Flag 1: the media is in this file.
                    full_box(b, b"url ", 1, |_| {});
                });
            });
            boxed(b, b"stbl", |b| {
                full_box(b, b"stsd", 0, |b| {
                    put_u32(b, 1);
                    self.avc1(b);
                });
                for kind in [b"stts", b"stsc"] {
                    full_box(b, kind, 0, |b| put_u32(b, 0));
                }
                full_box(b, b"stsz", 0, |b| {
                    put_u32(b, 0);
                    put_u32(b, 0);
                });
                full_box(b, b"stco", 0, |b| put_u32(b, 0));
            });
        });
    }

    fn avc1(&self, b: &mut Vec<u8>) {
        boxed(b, b"avc1", |b| {
            b.extend_from_slice(&[0; 6]);
            put_u16(b, 1); // data reference index
            b.extend_from_slice(&[0; 16]);
            // Both fit: Sps::parse caps them at 8192.
            put_u16(b, self.info.width as u16);
            put_u16(b, self.info.height as u16);
            put_u32(b, 0x0048_0000); // 72 dpi
            put_u32(b, 0x0048_0000);
            put_u32(b, 0);
            put_u16(b, 1); // frames per sample
            b.extend_from_slice(&[0; 32]); // compressor name
            put_u16(b, 0x18); // depth
            put_u16(b, 0xFFFF);
            boxed(b, b"avcC", |b| self.avcc(b));
            boxed(b, b"pasp", |b| {
                put_u32(b, 1);
                put_u32(b, 1);
            });
        });
    }

    /// ISO 14496-15 5.3.3.1: one SPS, one PPS, 4-byte NAL lengths.
    fn avcc(&self, b: &mut Vec<u8>) {
        let info = &self.info;
        b.extend_from_slice(&[1, info.profile_idc, info.constraints, info.level_idc]);
        b.push(0xFC | 3);
        b.push(0xE0 | 1);
        put_u16(b, self.sps.len() as u16);
        b.extend_from_slice(&self.sps);
        b.push(1);
        put_u16(b, self.pps.len() as u16);
        b.extend_from_slice(&self.pps);
        if !matches!(info.profile_idc, 66 | 77 | 88) {
            b.push(0xFC | info.chroma_format_idc);
            b.push(0xF8 | (info.bit_depth_luma - 8));
            b.push(0xF8 | (info.bit_depth_chroma - 8));
            b.push(0); // no SPS extensions
        }
    }
}

/// Numbers the fragments of one stream.
#[derive(Debug, Default)]
pub struct Fragmenter {
    sequence: u32,
}

impl Fragmenter {
    pub fn new() -> Fragmenter {
        Fragmenter::default()
    }

    /// `moof` + `mdat` for one frame: `sample` is its NAL units with 4-byte
    /// lengths, `decode_time` and `duration` in [`TIMESCALE`] units. A live
    /// caller that cannot wait for the next frame passes the last interval.
    pub fn fragment(
        &mut self,
        decode_time: u64,
        duration: u32,
        keyframe: bool,
        sample: &[u8],
    ) -> Vec<u8> {
        self.sequence = self.sequence.wrapping_add(1);
        let size = u32::try_from(sample.len()).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(sample.len() + 120);
        let mut data_offset_at = 0;
        boxed(&mut out, b"moof", |b| {
            full_box(b, b"mfhd", 0, |b| put_u32(b, self.sequence));
            boxed(b, b"traf", |b| {
                // Base is the moof; default duration, size and flags given.
                full_box(b, b"tfhd", 0x02_0038, |b| {
                    put_u32(b, TRACK_ID);
                    put_u32(b, duration);
                    put_u32(b, size);
                    put_u32(b, NON_SYNC_SAMPLE);
                });
                full_box_v(b, b"tfdt", 1, 0, |b| {
                    b.extend_from_slice(&decode_time.to_be_bytes())
                });
                // Data offset, and for a keyframe its own first-sample flags.
                let flags = if keyframe { 0x05 } else { 0x01 };
                full_box(b, b"trun", flags, |b| {
                    put_u32(b, 1);
                    data_offset_at = b.len();
                    put_u32(b, 0);
                    if keyframe {
                        put_u32(b, SYNC_SAMPLE);
                    }
                });
            });
        });
        // The sample starts after the moof and the mdat header.
        let data_offset = (out.len() + 8) as u32;
        out[data_offset_at..data_offset_at + 4].copy_from_slice(&data_offset.to_be_bytes());
        put_u32(&mut out, size.saturating_add(8));
        out.extend_from_slice(b"mdat");
        out.extend_from_slice(sample);
        out
    }
}

/// What a fragment `Fragmenter::fragment` wrote says of itself: its
/// sequence number and whether its frame is a keyframe. None for bytes that
/// are not such a fragment.
pub fn fragment_info(fragment: &[u8]) -> Option<(u32, bool)> {
    let mfhd = find_box(fragment, &[b"moof", b"mfhd"])?;
    let sequence = u32::from_be_bytes(mfhd.get(4..8)?.try_into().ok()?);
    let trun = find_box(fragment, &[b"moof", b"traf", b"trun"])?;
    // Only a keyframe carries its own first-sample flags (0x04).
    let keyframe = trun.get(3)? & 0x04 != 0;
    Some((sequence, keyframe))
}

/// The frame a fragment `Fragmenter::fragment` wrote: its NAL units with
/// 4-byte lengths (the `mdat`'s body). None for other bytes.
pub fn sample(fragment: &[u8]) -> Option<&[u8]> {
    find_box(fragment, &[b"mdat"])
}

/// The decode time (`tfdt`, in [`TIMESCALE`] units) of a fragment
/// `Fragmenter::fragment` wrote; None for other bytes.
pub fn decode_time(fragment: &[u8]) -> Option<u64> {
    let tfdt = find_box(fragment, &[b"moof", b"traf", b"tfdt"])?;
    match tfdt.first()? {
        1 => Some(u64::from_be_bytes(tfdt.get(4..12)?.try_into().ok()?)),
        _ => Some(u64::from(u32::from_be_bytes(
            tfdt.get(4..8)?.try_into().ok()?,
        ))),
    }
}

/// The boxes directly inside `data`, as (type, body); an error where a size
/// does not fit. For reading back what was written (tests, checks).
pub fn boxes(data: &[u8]) -> impl Iterator<Item = Result<([u8; 4], &[u8]), MediaError>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let parsed = rest.split_first_chunk::<8>().and_then(|(head, _)| {
            let size = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
            let kind = [head[4], head[5], head[6], head[7]];
            (size >= 8 && size <= rest.len()).then(|| (kind, &rest[8..size], &rest[size..]))
        });
        let Some((kind, body, next)) = parsed else {
            rest = &[];
            return Some(Err(MediaError::new("MP4 box", "size does not fit")));
        };
        rest = next;
        Some(Ok((kind, body)))
    })
}

/// The body of the first box along `path` (each a type inside the last).
pub fn find_box<'a>(data: &'a [u8], path: &[&[u8; 4]]) -> Option<&'a [u8]> {
    let (first, inner) = path.split_first()?;
    let body = boxes(data)
        .filter_map(Result::ok)
        .find(|(kind, _)| kind == *first)?
        .1;
    if inner.is_empty() {
        Some(body)
    } else {
        find_box(body, inner)
    }
}

fn put_u16(b: &mut Vec<u8>, v: u16) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn put_u32(b: &mut Vec<u8>, v: u32) {
    b.extend_from_slice(&v.to_be_bytes());
}

fn mvhd(b: &mut Vec<u8>) {
    full_box(b, b"mvhd", 0, |b| {
        put_u32(b, 0);
        put_u32(b, 0);
        put_u32(b, 1000); // movie timescale
        put_u32(b, 0);
        put_u32(b, 0x0001_0000); // rate 1.0
        put_u16(b, 0x0100); // volume 1.0
        b.extend_from_slice(&[0; 10]);
        put_matrix(b, Rotation::None.matrix(0, 0));
        b.extend_from_slice(&[0; 24]);
        put_u32(b, TRACK_ID + 1); // next track id
    });
}

/// The 3x3 matrix; u, v, w fixed as the format wants.
fn put_matrix(b: &mut Vec<u8>, [a, bb, c, d, tx, ty]: [i32; 6]) {
    for v in [a, bb, 0, c, d, 0, tx, ty, 0x4000_0000] {
        b.extend_from_slice(&v.to_be_bytes());
    }
}

/// A box: its size (patched in when `body` is done), its type, its body.
fn boxed<F: FnOnce(&mut Vec<u8>)>(out: &mut Vec<u8>, kind: &[u8; 4], body: F) {
    let start = out.len();
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(kind);
    body(out);
    let size = (out.len() - start) as u32;
    out[start..start + 4].copy_from_slice(&size.to_be_bytes());
}

fn full_box<F: FnOnce(&mut Vec<u8>)>(out: &mut Vec<u8>, kind: &[u8; 4], flags: u32, body: F) {
    full_box_v(out, kind, 0, flags, body);
}

fn full_box_v<F: FnOnce(&mut Vec<u8>)>(
    out: &mut Vec<u8>,
    kind: &[u8; 4],
    version: u8,
    flags: u32,
    body: F,
) {
    boxed(out, kind, |b| {
        put_u32(b, u32::from(version) << 24 | (flags & 0x00FF_FFFF));
        body(b);
    });
}

#[cfg(test)]
mod tests;
