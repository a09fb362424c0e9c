//! What a camera is: the external camera types a user can configure, and which
//! built-in camera a Bambu Lab printer model has.

use std::fmt;
use std::str::FromStr;

/// An external camera's type, as stored in the registry and given on the CLI.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CameraType {
    /// An http(s) URL serving a multipart MJPEG stream.
    Mjpeg,
    /// An http(s) URL returning one JPEG per request.
    Snapshot,
    /// An rtsp:// or rtsps:// URL (needs ffmpeg).
    Rtsp,
    /// A local V4L2 device `/dev/videoN` (needs ffmpeg).
    Usb,
}

impl CameraType {
    pub const ALL: [CameraType; 4] = [
        CameraType::Mjpeg,
        CameraType::Snapshot,
        CameraType::Rtsp,
        CameraType::Usb,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            CameraType::Mjpeg => "mjpeg",
            CameraType::Snapshot => "snapshot",
            CameraType::Rtsp => "rtsp",
            CameraType::Usb => "usb",
        }
    }
}

impl fmt::Display for CameraType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for CameraType {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        CameraType::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown camera type {s:?}: expected mjpeg, snapshot, rtsp or usb")
            })
    }
}

/// The camera built into a Bambu Lab printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltIn {
    /// JPEG frames over TLS on port 6000 (P1P, P1S, A1, A1 mini, A2L, unknown).
    Chamber,
    /// H.264 over RTSP over TLS on port 322 (X1, X2, H2, P2 families).
    Rtsps,
}

impl BuiltIn {
    pub fn default_port(self) -> u16 {
        match self {
            BuiltIn::Chamber => 6000,
            BuiltIn::Rtsps => 322,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BuiltIn::Chamber => "chamber",
            BuiltIn::Rtsps => "rtsps",
        }
    }
}

/// Display-name prefixes of the models with an RTSPS camera.
const RTSPS_NAME_PREFIXES: [&str; 4] = ["X1", "X2", "H2", "P2"];
/// Internal model codes (as reported over MQTT / SSDP) with an RTSPS camera.
const RTSPS_MODEL_CODES: [&str; 11] = [
    "BL-P001", "BL-P002", "C13", "N6", "N7", "O1D", "O1E", "O2D", "O1C", "O1C2", "O1S",
];

/// Which built-in camera a model has. Unknown and missing models get the
/// port-6000 camera, as the service printcam replaces did.
pub fn builtin_for_model(model: Option<&str>) -> BuiltIn {
    let Some(model) = model.map(str::trim).filter(|m| !m.is_empty()) else {
        return BuiltIn::Chamber;
    };
    let upper = model.to_ascii_uppercase();
    let by_code = RTSPS_MODEL_CODES.iter().any(|c| *c == upper);
    let by_name = RTSPS_NAME_PREFIXES.iter().any(|p| upper.starts_with(p));
    if by_code || by_name {
        BuiltIn::Rtsps
    } else {
        BuiltIn::Chamber
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_their_camera() {
        for m in [
            "X1C", "x1", "X1E", "X2D", "H2D", "H2D Pro", "h2s", "H2C", "P2S",
        ] {
            assert_eq!(builtin_for_model(Some(m)), BuiltIn::Rtsps, "{m}");
        }
        for m in [
            "BL-P001", "bl-p002", "C13", "N6", "N7", "O1D", "O1E", "O2D", "O1C", "O1C2", "O1S",
        ] {
            assert_eq!(builtin_for_model(Some(m)), BuiltIn::Rtsps, "{m}");
        }
        for m in [
            "P1P", "P1S", "A1", "A1 mini", "A2L", "C11", "C12", "N1", "N2S", "N9", "weird", "",
        ] {
            assert_eq!(builtin_for_model(Some(m)), BuiltIn::Chamber, "{m}");
        }
        assert_eq!(builtin_for_model(None), BuiltIn::Chamber);
    }

    #[test]
    fn camera_type_parses_case_insensitively() {
        assert_eq!("MJPEG".parse::<CameraType>(), Ok(CameraType::Mjpeg));
        assert_eq!(" usb ".parse::<CameraType>(), Ok(CameraType::Usb));
        assert!("hls".parse::<CameraType>().is_err());
    }
}
