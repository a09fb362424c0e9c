//! H.264 NAL units: types, Annex B and length-prefixed framing, and the
//! sequence parameter set fields a container needs (picture size, profile,
//! level, chroma format and bit depths).

use super::bits::BitReader;
use super::MediaError;

pub const NAL_SLICE: u8 = 1;
pub const NAL_IDR: u8 = 5;
pub const NAL_SEI: u8 = 6;
pub const NAL_SPS: u8 = 7;
pub const NAL_PPS: u8 = 8;
pub const NAL_AUD: u8 = 9;

/// The type of a NAL unit from its header byte.
pub fn nal_type(header: u8) -> u8 {
    header & 0x1F
}

/// The NAL units of an Annex B byte stream (start codes `00 00 01` or
/// `00 00 00 01`), without start codes and trailing zero bytes. Bytes before
/// the first start code are not a NAL unit and are skipped.
pub fn annex_b_nals(data: &[u8]) -> impl Iterator<Item = &[u8]> {
    let mut rest = match find_start_code(data) {
        Some((_, end)) => &data[end..],
        None => &[][..],
    };
    std::iter::from_fn(move || loop {
        if rest.is_empty() {
            return None;
        }
        let (nal, next) = match find_start_code(rest) {
            Some((start, end)) => (&rest[..start], &rest[end..]),
            None => (rest, &[][..]),
        };
        rest = next;
        let len = nal.iter().rposition(|&b| b != 0).map_or(0, |i| i + 1);
        if len > 0 {
            return Some(&nal[..len]);
        }
    })
}

/// Where the first `00 00 01` starts and where it ends.
fn find_start_code(data: &[u8]) -> Option<(usize, usize)> {
    memchr::memmem::find(data, &[0, 0, 1]).map(|i| (i, i + 3))
}

/// Appends `nal` with a 4-byte big-endian length, the framing of MP4 samples.
pub fn push_length_prefixed(out: &mut Vec<u8>, nal: &[u8]) {
    let len = u32::try_from(nal.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(nal);
}

/// NAL units as an MP4 sample: each with a 4-byte length.
pub fn to_length_prefixed<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        push_length_prefixed(&mut out, nal);
    }
    out
}

/// The NAL units of 4-byte length-prefixed data; an error if a length runs
/// past the end.
pub fn length_prefixed_nals(data: &[u8]) -> impl Iterator<Item = Result<&[u8], MediaError>> {
    let mut rest = data;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let Some((len, tail)) = rest.split_first_chunk::<4>() else {
            rest = &[];
            return Some(Err(MediaError::new("sample", "truncated NAL length")));
        };
        let len = u32::from_be_bytes(*len) as usize;
        if len > tail.len() {
            rest = &[];
            return Some(Err(MediaError::new("sample", "NAL length past the end")));
        }
        let (nal, next) = tail.split_at(len);
        rest = next;
        Some(Ok(nal))
    })
}

/// NAL units as an Annex B stream (4-byte start codes), what a decoder reads
/// on its stdin.
pub fn to_annex_b<'a>(nals: impl IntoIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    for nal in nals {
        out.extend_from_slice(&[0, 0, 0, 1]);
        out.extend_from_slice(nal);
    }
    out
}

/// The RBSP of a NAL unit's payload: every `00 00 03` loses its `03`.
pub fn unescape(payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(payload.len());
    let mut zeros = 0;
    for &b in payload {
        if zeros >= 2 && b == 3 {
            zeros = 0;
            continue;
        }
        zeros = if b == 0 { zeros + 1 } else { 0 };
        out.push(b);
    }
    out
}

/// The fields of a sequence parameter set that an MP4 track and a codec
/// string need. Only made by [`Sps::parse`], so the sizes are plausible.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sps {
    pub profile_idc: u8,
    /// The constraint_set flags byte, as it appears in `avcC` and codec strings.
    pub constraints: u8,
    pub level_idc: u8,
    pub chroma_format_idc: u8,
    pub bit_depth_luma: u8,
    pub bit_depth_chroma: u8,
    pub frame_mbs_only: bool,
    /// Picture size after cropping, in pixels.
    pub width: u32,
    pub height: u32,
}

/// The largest picture accepted, in macroblocks per side (8192 pixels): far
/// above any camera, and small enough that sizes cannot overflow.
const MAX_MBS: u32 = 512;

/// Profiles whose SPS carries chroma format, bit depths and scaling lists.
const HIGH_PROFILES: [u8; 13] = [100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135];

impl Sps {
    /// Parses a whole SPS NAL unit, header byte included.
    pub fn parse(nal: &[u8]) -> Result<Sps, MediaError> {
        let (&header, payload) = nal
            .split_first()
            .ok_or_else(|| MediaError::new("SPS", "empty NAL unit"))?;
        if nal_type(header) != NAL_SPS {
            return Err(MediaError::new(
                "SPS",
                format!("NAL unit type {} is not an SPS", nal_type(header)),
            ));
        }
        let rbsp = unescape(payload);
        let mut r = BitReader::new(&rbsp, "SPS");
        let profile_idc = r.bits(8)? as u8;
        let constraints = r.bits(8)? as u8;
        let level_idc = r.bits(8)? as u8;
        r.ue_max(31, "seq_parameter_set_id")?;
        let mut sps = Sps {
            profile_idc,
            constraints,
            level_idc,
            chroma_format_idc: 1,
            bit_depth_luma: 8,
            bit_depth_chroma: 8,
            frame_mbs_only: true,
            width: 0,
            height: 0,
        };
        let mut chroma_array_type = 1;
        if HIGH_PROFILES.contains(&profile_idc) {
            sps.chroma_format_idc = r.ue_max(3, "chroma_format_idc")? as u8;
            chroma_array_type = sps.chroma_format_idc;
            if sps.chroma_format_idc == 3 && r.bit()? {
                // separate_colour_plane_flag: three monochrome planes.
                chroma_array_type = 0;
            }
            sps.bit_depth_luma = 8 + r.ue_max(6, "bit_depth_luma_minus8")? as u8;
            sps.bit_depth_chroma = 8 + r.ue_max(6, "bit_depth_chroma_minus8")? as u8;
            r.bit()?; // qpprime_y_zero_transform_bypass_flag
            if r.bit()? {
                let lists = if sps.chroma_format_idc == 3 { 12 } else { 8 };
                for i in 0..lists {
                    if r.bit()? {
                        skip_scaling_list(&mut r, if i < 6 { 16 } else { 64 })?;
                    }
                }
            }
        }
        r.ue_max(12, "log2_max_frame_num_minus4")?;
        skip_pic_order_count(&mut r)?;
        r.ue()?; // max_num_ref_frames
        r.bit()?; // gaps_in_frame_num_value_allowed_flag
        let width_mbs = r.ue_max(MAX_MBS - 1, "pic_width_in_mbs_minus1")? + 1;
        let height_map_units = r.ue_max(MAX_MBS - 1, "pic_height_in_map_units_minus1")? + 1;
        sps.frame_mbs_only = r.bit()?;
        if !sps.frame_mbs_only {
            r.bit()?; // mb_adaptive_frame_field_flag
        }
        r.bit()?; // direct_8x8_inference_flag
        let field_factor = if sps.frame_mbs_only { 1 } else { 2 };
        let coded_width = width_mbs * 16;
        let coded_height = height_map_units * 16 * field_factor;
        let (mut crop_x, mut crop_y) = (0, 0);
        if r.bit()? {
            let (unit_x, unit_y) = crop_units(chroma_array_type, field_factor);
            let left = r.ue_max(coded_width, "frame_crop_left_offset")?;
            let right = r.ue_max(coded_width, "frame_crop_right_offset")?;
            let top = r.ue_max(coded_height, "frame_crop_top_offset")?;
            let bottom = r.ue_max(coded_height, "frame_crop_bottom_offset")?;
            crop_x = unit_x * (left + right);
            crop_y = unit_y * (top + bottom);
        }
        if crop_x >= coded_width || crop_y >= coded_height {
            return Err(MediaError::new(
                "SPS",
                format!(
                    "cropping {crop_x}x{crop_y} leaves nothing of {coded_width}x{coded_height}"
                ),
            ));
        }
        sps.width = coded_width - crop_x;
        sps.height = coded_height - crop_y;
        Ok(sps)
    }

    /// The RFC 6381 codec string, `avc1.PPCCLL` in hex, as a browser's
    /// `MediaSource.isTypeSupported` wants it.
    pub fn codec_string(&self) -> String {
        format!(
            "avc1.{:02x}{:02x}{:02x}",
            self.profile_idc, self.constraints, self.level_idc
        )
    }
}

/// Cropping is counted in chroma samples (and in field pairs for interlaced
/// pictures): H.264 7.4.2.1.1, CropUnitX and CropUnitY.
fn crop_units(chroma_array_type: u8, field_factor: u32) -> (u32, u32) {
    let (sub_width, sub_height) = match chroma_array_type {
        1 => (2, 2),
        2 => (2, 1),
        _ => (1, 1),
    };
    (sub_width, sub_height * field_factor)
}

/// H.264 7.3.2.1.1.1: a scaling list is delta-coded and may stop early
/// (a next scale of 0 repeats the last value to the end).
fn skip_scaling_list(r: &mut BitReader, size: usize) -> Result<(), MediaError> {
    let mut last: i32 = 8;
    let mut next: i32 = 8;
    for _ in 0..size {
        if next != 0 {
            let delta = r.se()?;
            if !(-128..=127).contains(&delta) {
                return Err(MediaError::new("SPS", "delta_scale out of range"));
            }
            next = (last + delta + 256) % 256;
        }
        if next != 0 {
            last = next;
        }
    }
    Ok(())
}

fn skip_pic_order_count(r: &mut BitReader) -> Result<(), MediaError> {
    match r.ue_max(2, "pic_order_cnt_type")? {
        0 => {
            r.ue_max(12, "log2_max_pic_order_cnt_lsb_minus4")?;
        }
        1 => {
            r.bit()?; // delta_pic_order_always_zero_flag
            r.se()?; // offset_for_non_ref_pic
            r.se()?; // offset_for_top_to_bottom_field
            let cycle = r.ue_max(255, "num_ref_frames_in_pic_order_cnt_cycle")?;
            for _ in 0..cycle {
                r.se()?;
            }
        }
        _ => {}
    }
    Ok(())
}

#[cfg(test)]
mod tests;
