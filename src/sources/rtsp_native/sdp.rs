//! The H.264 video track of a DESCRIBE answer's SDP (RFC 4566, RFC 6184
//! section 8.2): its payload type, clock rate, control URL and
//! `sprop-parameter-sets`. Only the lines that matter are read.

use crate::media::rtp_h264::sprop_parameter_sets;

/// The track printcam plays.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Track {
    pub payload_type: u8,
    pub clock_rate: u32,
    /// `a=control` of the media, as written (relative or absolute).
    pub control: Option<String>,
    /// SPS and PPS NAL units from `sprop-parameter-sets` (may be empty: then
    /// they come in band).
    pub parameter_sets: Vec<Vec<u8>>,
}

/// What the SDP says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Description {
    /// `a=control` at session level: the aggregate control URL.
    pub session_control: Option<String>,
    pub track: Track,
}

/// A media section being read.
#[derive(Default)]
struct Media {
    video: bool,
    formats: Vec<u8>,
    control: Option<String>,
    /// payload type → (encoding, clock rate)
    rtpmap: Vec<(u8, String, u32)>,
    /// payload type → fmtp parameters
    fmtp: Vec<(u8, String)>,
}

impl Media {
    /// The first H.264 format of a video section.
    fn h264(&self) -> Option<(u8, u32)> {
        if !self.video {
            return None;
        }
        self.formats.iter().find_map(|pt| {
            self.rtpmap
                .iter()
                .find(|(p, enc, _)| p == pt && enc.eq_ignore_ascii_case("H264"))
                .map(|(p, _, rate)| (*p, *rate))
        })
    }
}

pub fn parse(sdp: &str) -> Result<Description, String> {
    let mut session_control = None;
    let mut media: Vec<Media> = Vec::new();
    for line in sdp.lines().map(str::trim) {
        if let Some(m) = line.strip_prefix("m=") {
            media.push(media_line(m));
            continue;
        }
        let Some(attr) = line.strip_prefix("a=") else {
            continue;
        };
        let (name, value) = attr.split_once(':').unwrap_or((attr, ""));
        let Some(current) = media.last_mut() else {
            if name == "control" {
                session_control = Some(value.to_string());
            }
            continue;
        };
        match name {
            "control" => current.control = Some(value.to_string()),
            "rtpmap" => current.rtpmap.extend(rtpmap(value)),
            "fmtp" => current.fmtp.extend(fmtp(value)),
            _ => {}
        }
    }
    let (m, (payload_type, clock_rate)) = media
        .iter()
        .find_map(|m| m.h264().map(|h| (m, h)))
        .ok_or_else(|| "the camera offers no H.264 video track".to_string())?;
    let params = m
        .fmtp
        .iter()
        .find(|(pt, _)| *pt == payload_type)
        .map(|(_, p)| p.as_str())
        .unwrap_or("");
    if let Some(mode) = fmtp_param(params, "packetization-mode") {
        if mode.trim() == "2" {
            return Err("the camera sends H.264 in interleaved mode (packetization-mode=2), which printcam does not take".into());
        }
    }
    // Bad parameter sets in the SDP are not fatal: cameras repeat them in band.
    let parameter_sets = fmtp_param(params, "sprop-parameter-sets")
        .and_then(|v| sprop_parameter_sets(v).ok())
        .unwrap_or_default();
    Ok(Description {
        session_control,
        track: Track {
            payload_type,
            clock_rate,
            control: m.control.clone(),
            parameter_sets,
        },
    })
}

/// `video 0 RTP/AVP 96 97`
fn media_line(m: &str) -> Media {
    let mut parts = m.split_whitespace();
    let video = parts.next() == Some("video");
    let formats = parts.skip(2).filter_map(|f| f.parse().ok()).collect();
    Media {
        video,
        formats,
        ..Media::default()
    }
}

/// `96 H264/90000`
fn rtpmap(value: &str) -> Option<(u8, String, u32)> {
    let (pt, rest) = value.split_once(' ')?;
    let mut enc = rest.trim().split('/');
    let name = enc.next()?.to_string();
    let rate = enc.next()?.parse().ok()?;
    Some((pt.parse().ok()?, name, rate))
}

/// `96 packetization-mode=1;sprop-parameter-sets=…`
fn fmtp(value: &str) -> Option<(u8, String)> {
    let (pt, rest) = value.split_once(' ')?;
    Some((pt.parse().ok()?, rest.trim().to_string()))
}

fn fmtp_param<'a>(params: &'a str, name: &str) -> Option<&'a str> {
    params.split(';').find_map(|p| {
        let (k, v) = p.split_once('=')?;
        k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
    })
}

/// Where a control URL points (RFC 2326 C.1.1): `*` or none is the base
/// itself; an absolute URL stays as it is; anything else is relative to the
/// base (Content-Base, Content-Location or the request URL).
pub fn resolve(base: &str, control: Option<&str>) -> String {
    match control {
        None | Some("") | Some("*") => base.to_string(),
        Some(c) if c.starts_with("rtsp://") || c.starts_with("rtsps://") => c.to_string(),
        Some(c) if base.ends_with('/') => format!("{base}{c}"),
        Some(c) => format!("{base}/{c}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The SDP of tests/data/rtsp/gstreamer_digest.txt.
    const GSTREAMER: &str = "v=0\r\no=- 10114434593718030813 1 IN IP4 127.0.0.1\r\n\
        s=Session streamed with GStreamer\r\ni=rtsp-server\r\nt=0 0\r\na=tool:GStreamer\r\n\
        a=type:broadcast\r\na=control:*\r\na=range:npt=now-\r\nm=video 0 RTP/AVP 96\r\n\
        c=IN IP4 0.0.0.0\r\nb=AS:2097\r\na=rtpmap:96 H264/90000\r\na=framerate:15\r\n\
        a=fmtp:96 packetization-mode=1;sprop-parameter-sets=Z0LAFtoCgL/lwFqDAwNSgAAAAwCAAAAPR4sXUA==,aM48gA==;profile-level-id=42c016;level-asymmetry-allowed=1\r\n\
        a=control:stream=0\r\na=ts-refclk:local\r\na=mediaclk:sender\r\n\
        a=ssrc:4292153795 cname:user4109677454@host-18f81a09\r\n";

    #[test]
    fn finds_the_h264_track_of_gstreamer() {
        let d = parse(GSTREAMER).unwrap();
        assert_eq!(d.session_control.as_deref(), Some("*"));
        assert_eq!(d.track.payload_type, 96);
        assert_eq!(d.track.clock_rate, 90_000);
        assert_eq!(d.track.control.as_deref(), Some("stream=0"));
        assert_eq!(d.track.parameter_sets.len(), 2);
        assert_eq!(d.track.parameter_sets[0][0] & 0x1F, 7, "SPS first");
        assert_eq!(d.track.parameter_sets[1][0] & 0x1F, 8, "then PPS");
    }

    #[test]
    fn skips_audio_and_other_codecs() {
        let sdp = "v=0\nm=audio 0 RTP/AVP 0\na=control:track1\n\
                   m=video 0 RTP/AVP 26 97\na=rtpmap:26 JPEG/90000\na=rtpmap:97 H264/90000\n\
                   a=control:track2\n";
        let d = parse(sdp).unwrap();
        assert_eq!(d.session_control, None);
        assert_eq!(d.track.payload_type, 97);
        assert_eq!(d.track.control.as_deref(), Some("track2"));
        assert!(d.track.parameter_sets.is_empty());
    }

    #[test]
    fn no_h264_or_interleaved_mode_is_an_error() {
        let h265 = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H265/90000\n";
        assert!(parse(h265).unwrap_err().contains("no H.264"));
        let mode2 = "v=0\nm=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n\
                     a=fmtp:96 packetization-mode=2\n";
        assert!(parse(mode2).unwrap_err().contains("packetization-mode=2"));
        assert!(parse("").is_err());
    }

    #[test]
    fn bad_parameter_sets_are_left_to_the_stream() {
        let sdp = "m=video 0 RTP/AVP 96\na=rtpmap:96 H264/90000\n\
                   a=fmtp:96 sprop-parameter-sets=@@@\n";
        assert!(parse(sdp).unwrap().track.parameter_sets.is_empty());
    }

    #[test]
    fn control_urls_resolve_against_the_base() {
        let base = "rtsps://10.0.0.5:322/streaming/live/1";
        assert_eq!(resolve(base, None), base);
        assert_eq!(resolve(base, Some("*")), base);
        assert_eq!(resolve(base, Some("track1")), format!("{base}/track1"));
        assert_eq!(
            resolve(&format!("{base}/"), Some("stream=0")),
            format!("{base}/stream=0")
        );
        assert_eq!(resolve(base, Some("rtsp://x/y")), "rtsp://x/y");
    }
}
