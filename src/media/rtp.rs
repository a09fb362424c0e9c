//! RTP packets (RFC 3550): the fixed header, CSRCs, a header extension and
//! padding, as they arrive interleaved on an RTSP connection.

use super::MediaError;

/// One RTP packet, borrowed from the bytes it was parsed from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpPacket<'a> {
    pub marker: bool,
    pub payload_type: u8,
    pub sequence: u16,
    pub timestamp: u32,
    pub ssrc: u32,
    pub payload: &'a [u8],
}

const FIXED_HEADER: usize = 12;

fn bad(detail: impl Into<String>) -> MediaError {
    MediaError::new("RTP packet", detail)
}

impl<'a> RtpPacket<'a> {
    pub fn parse(data: &'a [u8]) -> Result<RtpPacket<'a>, MediaError> {
        let Some((fixed, _)) = data.split_first_chunk::<FIXED_HEADER>() else {
            return Err(bad(format!(
                "{} bytes, shorter than its header",
                data.len()
            )));
        };
        let version = fixed[0] >> 6;
        if version != 2 {
            return Err(bad(format!("version {version}, not 2")));
        }
        let padding = fixed[0] & 0x20 != 0;
        let extension = fixed[0] & 0x10 != 0;
        let csrcs = usize::from(fixed[0] & 0x0F);
        let mut start = FIXED_HEADER + 4 * csrcs;
        if extension {
            // 16-bit profile field, 16-bit length in 32-bit words.
            let words = data
                .get(start + 2..start + 4)
                .ok_or_else(|| bad("header extension cut off"))?;
            start += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
        }
        let mut end = data.len();
        if padding {
            let pad = usize::from(data[end - 1]);
            if pad == 0 || pad > end {
                return Err(bad(format!("padding of {pad} bytes")));
            }
            end -= pad;
        }
        if start > end {
            return Err(bad("header longer than the packet"));
        }
        Ok(RtpPacket {
            marker: fixed[1] & 0x80 != 0,
            payload_type: fixed[1] & 0x7F,
            sequence: u16::from_be_bytes([fixed[2], fixed[3]]),
            timestamp: u32::from_be_bytes([fixed[4], fixed[5], fixed[6], fixed[7]]),
            ssrc: u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]),
            payload: &data[start..end],
        })
    }

    /// The packet as bytes: a 12-byte header (no CSRC, extension or
    /// padding) and the payload.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(FIXED_HEADER + self.payload.len());
        out.push(0x80);
        out.push(u8::from(self.marker) << 7 | (self.payload_type & 0x7F));
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
        out.extend_from_slice(self.payload);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn sample() -> RtpPacket<'static> {
        RtpPacket {
            marker: true,
            payload_type: 96,
            sequence: 0xFFFE,
            timestamp: 0xDEAD_BEEF,
            ssrc: 0x1234_5678,
            payload: &[0x65, 1, 2, 3],
        }
    }

    #[test]
    fn header_fields_round_trip() {
        let bytes = sample().to_bytes();
        assert_eq!(&bytes[..2], &[0x80, 0x80 | 96]);
        assert_eq!(RtpPacket::parse(&bytes).unwrap(), sample());
    }

    #[test]
    fn csrcs_extension_and_padding_are_skipped() {
        let plain = sample().to_bytes();
        let mut p = plain[..12].to_vec();
        p[0] = 0x80 | 0x20 | 0x10 | 2; // padding, extension, two CSRCs
        p.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 2]); // CSRCs
        p.extend_from_slice(&[0xBE, 0xDE, 0, 1, 9, 9, 9, 9]); // one extension word
        p.extend_from_slice(sample().payload);
        p.extend_from_slice(&[0, 0, 3]); // three bytes of padding
        let got = RtpPacket::parse(&p).unwrap();
        assert_eq!(got, sample());
    }

    #[test]
    fn malformed_headers_are_errors() {
        let good = sample().to_bytes();
        assert!(RtpPacket::parse(&good[..11]).is_err(), "short");
        let mut v1 = good.clone();
        v1[0] = 0x40;
        assert!(RtpPacket::parse(&v1).is_err(), "version 1");
        let mut csrc = good.clone();
        csrc[0] |= 0x0F; // 15 CSRCs in a 16-byte packet
        assert!(RtpPacket::parse(&csrc).is_err());
        let mut pad = good.clone();
        pad[0] |= 0x20;
        *pad.last_mut().unwrap() = 200;
        assert!(RtpPacket::parse(&pad).is_err(), "padding past the start");
        *pad.last_mut().unwrap() = 0;
        assert!(RtpPacket::parse(&pad).is_err(), "padding of zero");
        let mut ext = good[..12].to_vec();
        ext[0] |= 0x10;
        ext.extend_from_slice(&[0, 0]);
        assert!(RtpPacket::parse(&ext).is_err(), "extension cut off");
        ext.extend_from_slice(&[0, 5]);
        assert!(
            RtpPacket::parse(&ext).is_err(),
            "extension longer than the packet"
        );
    }

    proptest! {
        #[test]
        fn parse_never_panics(data in proptest::collection::vec(any::<u8>(), 0..64)) {
            if let Ok(p) = RtpPacket::parse(&data) {
                prop_assert!(p.payload.len() + 12 <= data.len());
            }
        }
    }
}
