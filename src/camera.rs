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

/// Which RTSP client reads an H.264 camera: printcam's own (the session
/// that feeds `<video>`, HLS, MJPEG and snapshots alike) or ffmpeg's
/// (through the TLS proxy; decodes every frame). `Auto` takes the native
/// one and falls back to ffmpeg for streams it cannot take (H.265,
/// MJPEG over RTSP, an SDP it cannot read); the other two force one, for
/// troubleshooting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RtspClient {
    #[default]
    Auto,
    Native,
    Ffmpeg,
}

impl RtspClient {
    pub const ALL: [RtspClient; 3] = [RtspClient::Auto, RtspClient::Native, RtspClient::Ffmpeg];

    pub fn as_str(self) -> &'static str {
        match self {
            RtspClient::Auto => "auto",
            RtspClient::Native => "native",
            RtspClient::Ffmpeg => "ffmpeg",
        }
    }
}

impl fmt::Display for RtspClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for RtspClient {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        RtspClient::ALL
            .into_iter()
            .find(|t| t.as_str().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| format!("unknown RTSP client {s:?}: expected auto, native or ffmpeg"))
    }
}

/// What a printer's camera endpoints serve, with what connecting to it
/// needs: made once from the stored settings (`cameras::camera_of`), so
/// nothing later finds a field missing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Camera {
    Demo,
    External {
        kind: CameraType,
        url: String,
    },
    BuiltIn {
        kind: BuiltIn,
        login: PrinterLogin,
    },
    /// A printer whose model printcam does not know (or that has none), its
    /// camera not detected yet: both kinds are tried on first use.
    Undetected {
        login: PrinterLogin,
    },
    /// Settings that name a camera but cannot reach it (a printer address
    /// without its access code, from an old or hand-edited registry): why.
    Unusable(String),
    /// Neither a Bambu address nor an enabled external camera.
    None,
}

/// Where a printer is and how to log in to its own camera.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PrinterLogin {
    pub host: String,
    /// Replaces the camera kind's default port.
    pub port: Option<u16>,
    pub access_code: String,
}

impl PrinterLogin {
    /// The port of the printer's camera of kind `b`.
    pub fn port_for(&self, b: BuiltIn) -> u16 {
        self.port.unwrap_or(b.default_port())
    }
}

/// What a printer's camera endpoints serve, as shown to people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CameraKind {
    Demo,
    External(CameraType),
    BuiltIn(BuiltIn),
    Undetected,
    None,
}

impl Camera {
    pub fn kind(&self) -> CameraKind {
        match self {
            Camera::Demo => CameraKind::Demo,
            Camera::External { kind, .. } => CameraKind::External(*kind),
            Camera::BuiltIn { kind, .. } => CameraKind::BuiltIn(*kind),
            Camera::Undetected { .. } => CameraKind::Undetected,
            Camera::Unusable(_) | Camera::None => CameraKind::None,
        }
    }
}

/// What a browser is given to show a camera: its H.264 in a `<video>`
/// (`stream.mp4`, or HLS), or JPEG pictures in an `<img>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Video {
    H264,
    Mjpeg,
}

impl Video {
    pub fn as_str(self) -> &'static str {
        match self {
            Video::H264 => "h264",
            Video::Mjpeg => "mjpeg",
        }
    }
}

impl CameraKind {
    /// The cameras `stream.mp4` serves (external RTSP ones, the printers'
    /// RTSPS ones) are H.264; the others, a printer whose camera is being
    /// detected among them, are JPEG. None without a camera.
    pub fn video(&self) -> Option<Video> {
        match self {
            CameraKind::External(CameraType::Rtsp) | CameraKind::BuiltIn(BuiltIn::Rtsps) => {
                Some(Video::H264)
            }
            CameraKind::None => None,
            _ => Some(Video::Mjpeg),
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            CameraKind::Demo => "demo",
            CameraKind::External(t) => t.as_str(),
            CameraKind::BuiltIn(b) => b.as_str(),
            CameraKind::Undetected => "undetected",
            CameraKind::None => "none",
        }
    }
}

/// The camera built into a Bambu Lab printer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BuiltIn {
    /// JPEG frames over TLS on port 6000 (P1P, P1S, A1, A1 mini, A2L).
    Chamber,
    /// H.264 over RTSP over TLS on port 322 (X1, X2, H2, P2 families).
    Rtsps,
}

impl BuiltIn {
    pub const ALL: [BuiltIn; 2] = [BuiltIn::Rtsps, BuiltIn::Chamber];

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

impl FromStr for BuiltIn {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        BuiltIn::ALL
            .into_iter()
            .find(|b| b.as_str() == s)
            .ok_or_else(|| format!("unknown built-in camera {s:?}: expected chamber or rtsps"))
    }
}

/// A Bambu Lab printer family, for quirks of one family (P2S firmware's
/// timestamps, for instance) beside the camera it has.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    X1,
    X1C,
    X1E,
    X2D,
    H2D,
    H2DPro,
    H2S,
    H2C,
    P2S,
    P1P,
    P1S,
    A1,
    A1Mini,
    A2L,
}

/// One known model name or internal code, normalised (see `normalise`).
struct Model {
    key: &'static str,
    /// None where only the camera is known, not which family the code is.
    family: Option<Family>,
    camera: BuiltIn,
}

const fn rtsps(key: &'static str, family: Option<Family>) -> Model {
    Model {
        key,
        family,
        camera: BuiltIn::Rtsps,
    }
}

const fn chamber(key: &'static str, family: Option<Family>) -> Model {
    Model {
        key,
        family,
        camera: BuiltIn::Chamber,
    }
}

/// Every model printcam knows, the one place model names are matched.
///
/// Where the entries come from:
/// - Names: the marketing names (design.md, "Built-in Bambu Lab cameras"),
///   which are also what firmware `product_name` reports after its
///   `Bambu Lab ` prefix (`Bambu Lab X1 Carbon`, `Bambu Lab H2D`,
///   `Bambu Lab P2S`) and SSDP names after `3DPrinter-`
///   (`3DPrinter-X1-Carbon`, `3DPrinter-X1`); `Carbon` is folded to `C`.
/// - Codes: BambuStudio's machine profiles (`model_id`) and the printers'
///   MQTT/SSDP `DevModel`: BL-P001 X1 Carbon, BL-P002 X1, C13 X1E, C11 P1P,
///   C12 P1S, N1 A1 mini, N2S A1, N7 P2S, O1D H2D, O1E and O2D H2D Pro,
///   O1S H2S, O1C and O1C2 H2C (as ha-bambulab and Bambuddy map them). N6
///   and N9 are listed by issue 11 with their camera only; N9 is taken to be
///   the A2L, N6's family is not known here.
/// - Cameras: issue 11 and design.md: RTSPS on 322 for the X1, X2, H2 and
///   P2 families, the port-6000 JPEG stream for P1 and A1/A2.
const MODELS: &[Model] = &[
    // Names.
    rtsps("X1", Some(Family::X1)),
    rtsps("X1C", Some(Family::X1C)),
    rtsps("X1E", Some(Family::X1E)),
    rtsps("X2D", Some(Family::X2D)),
    rtsps("H2D", Some(Family::H2D)),
    rtsps("H2DPRO", Some(Family::H2DPro)),
    rtsps("H2S", Some(Family::H2S)),
    rtsps("H2C", Some(Family::H2C)),
    rtsps("P2S", Some(Family::P2S)),
    chamber("P1P", Some(Family::P1P)),
    chamber("P1S", Some(Family::P1S)),
    chamber("A1", Some(Family::A1)),
    chamber("A1MINI", Some(Family::A1Mini)),
    chamber("A2L", Some(Family::A2L)),
    // Internal codes (hyphens removed by `normalise`).
    rtsps("BLP001", Some(Family::X1C)),
    rtsps("BLP002", Some(Family::X1)),
    rtsps("C13", Some(Family::X1E)),
    rtsps("N6", None),
    rtsps("N7", Some(Family::P2S)),
    rtsps("O1D", Some(Family::H2D)),
    rtsps("O1E", Some(Family::H2DPro)),
    rtsps("O2D", Some(Family::H2DPro)),
    rtsps("O1C", Some(Family::H2C)),
    rtsps("O1C2", Some(Family::H2C)),
    rtsps("O1S", Some(Family::H2S)),
    chamber("C11", Some(Family::P1P)),
    chamber("C12", Some(Family::P1S)),
    chamber("N1", Some(Family::A1Mini)),
    chamber("N2S", Some(Family::A1)),
    chamber("N9", Some(Family::A2L)),
];

/// A model as written by a user, an app or a printer, reduced to a key of
/// `MODELS`: upper case; spaces, hyphens and underscores dropped; the
/// `Bambu Lab` and `3DPrinter` prefixes and a `Combo` suffix (the bundle
/// with an AMS) removed; `Carbon` shortened to `C`.
fn normalise(model: &str) -> String {
    let mut key: String = model
        .chars()
        .filter(|c| !matches!(c, ' ' | '-' | '_'))
        .map(|c| c.to_ascii_uppercase())
        .collect();
    for prefix in ["BAMBULAB", "3DPRINTER"] {
        if let Some(rest) = key.strip_prefix(prefix) {
            key = rest.to_string();
        }
    }
    if let Some(rest) = key.strip_suffix("COMBO") {
        key = rest.to_string();
    }
    key.replace("CARBON", "C")
}

fn lookup(model: Option<&str>) -> Option<&'static Model> {
    let key = normalise(model?);
    MODELS.iter().find(|m| m.key == key)
}

/// Which built-in camera a model has; None for a missing or unknown model
/// (then the camera is detected on first use).
pub fn camera_for_model(model: Option<&str>) -> Option<BuiltIn> {
    lookup(model).map(|m| m.camera)
}

/// The family of a model, where printcam knows it.
pub fn family(model: Option<&str>) -> Option<Family> {
    lookup(model).and_then(|m| m.family)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn models_map_to_their_camera() {
        let rtsps = [
            // Names, as users write them.
            "X1",
            "X1C",
            "x1",
            "X1E",
            "X2D",
            "H2D",
            "H2D Pro",
            "h2dpro",
            "h2s",
            "H2C",
            "P2S",
            // Firmware product_name and SSDP names.
            "Bambu Lab X1 Carbon",
            "Bambu Lab X1",
            "Bambu Lab X1E",
            "Bambu Lab H2D",
            "Bambu Lab H2D Pro",
            "Bambu Lab H2S",
            "Bambu Lab H2C",
            "Bambu Lab P2S",
            "3DPrinter-X1-Carbon",
            "3DPrinter-X1",
            "X1 Carbon",
            "X1-Carbon",
            "X1 Carbon Combo",
            // Internal codes.
            "BL-P001",
            "bl-p002",
            "BLP001",
            "C13",
            "N6",
            "N7",
            "O1D",
            "O1E",
            "O2D",
            "O1C",
            "O1C2",
            "O1S",
        ];
        for m in rtsps {
            assert_eq!(camera_for_model(Some(m)), Some(BuiltIn::Rtsps), "{m}");
        }
        let chamber = [
            "P1P",
            "P1S",
            "p1s combo",
            "A1",
            "A1 mini",
            "A1 Mini",
            "A1mini",
            "A1-mini",
            "A2L",
            "Bambu Lab P1S",
            "Bambu Lab P1P",
            "Bambu Lab A1",
            "Bambu Lab A1 mini",
            "3DPrinter-P1S",
            "C11",
            "C12",
            "N1",
            "N2S",
            "N9",
        ];
        for m in chamber {
            assert_eq!(camera_for_model(Some(m)), Some(BuiltIn::Chamber), "{m}");
        }
        // Unknown: detected on first use. The old prefix match took these
        // for an RTSPS printer or (the rest) for a chamber one.
        for m in ["X1Cfoo", "H2", "P2", "X9", "weird", "", "   ", "Bambu Lab"] {
            assert_eq!(camera_for_model(Some(m)), None, "{m}");
        }
        assert_eq!(camera_for_model(None), None);
    }

    #[test]
    fn families_for_quirks() {
        assert_eq!(family(Some("Bambu Lab P2S")), Some(Family::P2S));
        assert_eq!(family(Some("N7")), Some(Family::P2S));
        assert_eq!(family(Some("3DPrinter-X1-Carbon")), Some(Family::X1C));
        assert_eq!(family(Some("O2D")), Some(Family::H2DPro));
        assert_eq!(family(Some("A1 mini")), Some(Family::A1Mini));
        assert_eq!(family(Some("N6")), None);
        assert_eq!(family(None), None);
    }

    #[test]
    fn every_table_key_is_already_normal_and_unique() {
        for (i, m) in MODELS.iter().enumerate() {
            assert_eq!(normalise(m.key), m.key);
            assert!(MODELS[..i].iter().all(|o| o.key != m.key), "{}", m.key);
        }
    }

    #[test]
    fn built_in_kinds_parse_back() {
        for b in BuiltIn::ALL {
            assert_eq!(b.as_str().parse::<BuiltIn>(), Ok(b));
        }
        assert!("port6000".parse::<BuiltIn>().is_err());
    }

    #[test]
    fn camera_type_parses_case_insensitively() {
        assert_eq!("MJPEG".parse::<CameraType>(), Ok(CameraType::Mjpeg));
        assert_eq!(" usb ".parse::<CameraType>(), Ok(CameraType::Usb));
        assert!("hls".parse::<CameraType>().is_err());
    }
}
