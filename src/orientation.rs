//! How a printer's picture is turned and mirrored for display. The pixels
//! are never touched: JPEG frames carry an EXIF Orientation tag
//! (`media::exif`), an MP4 init segment a display matrix (`media::fmp4`).

use crate::media::fmp4;
use std::fmt;

/// A clockwise turn for display.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Rotation {
    #[default]
    R0,
    R90,
    R180,
    R270,
}

impl Rotation {
    pub const ALL: [Rotation; 4] = [Rotation::R0, Rotation::R90, Rotation::R180, Rotation::R270];

    pub fn degrees(self) -> u16 {
        match self {
            Rotation::R0 => 0,
            Rotation::R90 => 90,
            Rotation::R180 => 180,
            Rotation::R270 => 270,
        }
    }

    pub fn from_degrees(degrees: i64) -> Option<Rotation> {
        Rotation::ALL
            .into_iter()
            .find(|r| i64::from(r.degrees()) == degrees)
    }

    /// What a client or the CLI gets told when it gives something else.
    pub fn refusal(field: &str, got: &str) -> String {
        format!("{field} must be 0, 90, 180 or 270 (degrees clockwise), not {got}")
    }
}

impl fmt::Display for Rotation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.degrees())
    }
}

/// The wiring of H.264 passthrough hands the printer's rotation to the
/// MP4 muxer (a mirror has no place in its matrix yet).
impl From<Rotation> for fmp4::Rotation {
    fn from(r: Rotation) -> fmp4::Rotation {
        match r {
            Rotation::R0 => fmp4::Rotation::None,
            Rotation::R90 => fmp4::Rotation::Cw90,
            Rotation::R180 => fmp4::Rotation::Cw180,
            Rotation::R270 => fmp4::Rotation::Cw270,
        }
    }
}

/// A mirror for display, applied before the turn.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub enum Flip {
    #[default]
    None,
    /// Left and right swap.
    Horizontal,
    /// Top and bottom swap.
    Vertical,
}

impl Flip {
    pub const ALL: [Flip; 3] = [Flip::None, Flip::Horizontal, Flip::Vertical];

    pub fn as_str(self) -> &'static str {
        match self {
            Flip::None => "none",
            Flip::Horizontal => "horizontal",
            Flip::Vertical => "vertical",
        }
    }

    /// `none`, `horizontal` or `vertical`, any case.
    pub fn parse(s: &str) -> Option<Flip> {
        Flip::ALL
            .into_iter()
            .find(|f| f.as_str().eq_ignore_ascii_case(s.trim()))
    }

    pub fn refusal(field: &str, got: &str) -> String {
        format!("{field} must be none, horizontal or vertical, not {got}")
    }
}

impl fmt::Display for Flip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The picture as shown: the camera's picture mirrored by `flip`, then
/// turned clockwise by `rotation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Hash)]
pub struct Orientation {
    pub rotation: Rotation,
    pub flip: Flip,
}

impl Orientation {
    /// True when frames are served as the camera sends them.
    pub fn is_identity(self) -> bool {
        self == Orientation::default()
    }

    /// The EXIF Orientation value (1–8) that makes a viewer show the
    /// picture this way. A vertical mirror is a horizontal one and a half
    /// turn, so the twelve settings share the eight values:
    ///
    /// | rotation | none | horizontal | vertical |
    /// |----------|------|------------|----------|
    /// | 0        | 1    | 2          | 4        |
    /// | 90       | 6    | 7          | 5        |
    /// | 180      | 3    | 4          | 2        |
    /// | 270      | 8    | 5          | 7        |
    pub fn exif_value(self) -> u8 {
        use Flip as F;
        use Rotation as R;
        match (self.rotation, self.flip) {
            (R::R0, F::None) => 1,
            (R::R0, F::Horizontal) => 2,
            (R::R0, F::Vertical) => 4,
            (R::R90, F::None) => 6,
            (R::R90, F::Horizontal) => 7,
            (R::R90, F::Vertical) => 5,
            (R::R180, F::None) => 3,
            (R::R180, F::Horizontal) => 4,
            (R::R180, F::Vertical) => 2,
            (R::R270, F::None) => 8,
            (R::R270, F::Horizontal) => 5,
            (R::R270, F::Vertical) => 7,
        }
    }

    /// Every setting, for tests and tables.
    pub fn all() -> impl Iterator<Item = Orientation> {
        Rotation::ALL.into_iter().flat_map(|rotation| {
            Flip::ALL
                .into_iter()
                .map(move |flip| Orientation { rotation, flip })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A picture 3 wide and 2 high as a viewer lays it out: where each
    /// stored pixel (x, y) lands, and the shown size.
    type Layout = (Vec<((i32, i32), (i32, i32))>, (i32, i32));

    const W: i32 = 3;
    const H: i32 = 2;

    fn pixels() -> Vec<(i32, i32)> {
        (0..H).flat_map(|y| (0..W).map(move |x| (x, y))).collect()
    }

    /// The setting done step by step: mirror, then quarter turns clockwise.
    fn by_steps(o: Orientation) -> Layout {
        let turns = o.rotation.degrees() / 90;
        let mut size = (W, H);
        let mut placed: Vec<_> = pixels()
            .into_iter()
            .map(|(x, y)| match o.flip {
                Flip::None => ((x, y), (x, y)),
                Flip::Horizontal => ((x, y), (W - 1 - x, y)),
                Flip::Vertical => ((x, y), (x, H - 1 - y)),
            })
            .collect();
        for _ in 0..turns {
            // A clockwise quarter turn of a w x h picture.
            let h = size.1;
            for (_, (px, py)) in placed.iter_mut() {
                (*px, *py) = (h - 1 - *py, *px);
            }
            size = (size.1, size.0);
        }
        (placed, size)
    }

    /// EXIF 2.3, tag 0x0112, in its own words: where the stored picture's
    /// 0th row and 0th column are shown.
    fn by_exif(value: u8) -> Layout {
        // (0th row is shown at, 0th column is shown at)
        let (row, col) = match value {
            1 => ("top", "left"),
            2 => ("top", "right"),
            3 => ("bottom", "right"),
            4 => ("bottom", "left"),
            5 => ("left", "top"),
            6 => ("right", "top"),
            7 => ("right", "bottom"),
            8 => ("left", "bottom"),
            _ => panic!("no EXIF orientation {value}"),
        };
        let transposed = matches!(row, "left" | "right");
        let size = if transposed { (H, W) } else { (W, H) };
        let placed = pixels()
            .into_iter()
            .map(|(x, y)| {
                let shown = if transposed {
                    // Rows become columns: y counts across, x down.
                    let sx = if row == "left" { y } else { H - 1 - y };
                    let sy = if col == "top" { x } else { W - 1 - x };
                    (sx, sy)
                } else {
                    let sx = if col == "left" { x } else { W - 1 - x };
                    let sy = if row == "top" { y } else { H - 1 - y };
                    (sx, sy)
                };
                ((x, y), shown)
            })
            .collect();
        (placed, size)
    }

    #[test]
    fn every_setting_maps_to_the_exif_value_that_shows_it() {
        for o in Orientation::all() {
            assert_eq!(by_steps(o), by_exif(o.exif_value()), "{o:?}");
        }
    }

    #[test]
    fn the_twelve_settings_reach_all_eight_values() {
        let mut values: Vec<u8> = Orientation::all().map(Orientation::exif_value).collect();
        values.sort_unstable();
        values.dedup();
        assert_eq!(values, (1..=8).collect::<Vec<u8>>());
        assert!(Orientation::default().is_identity());
        assert_eq!(Orientation::default().exif_value(), 1);
    }

    #[test]
    fn mirrored_settings_are_the_mirrored_values() {
        for o in Orientation::all() {
            let mirrored = matches!(o.exif_value(), 2 | 4 | 5 | 7);
            assert_eq!(mirrored, o.flip != Flip::None, "{o:?}");
        }
    }

    #[test]
    fn degrees_and_names_parse_back() {
        for r in Rotation::ALL {
            assert_eq!(Rotation::from_degrees(i64::from(r.degrees())), Some(r));
        }
        for bad in [45, -90, 360, 1] {
            assert_eq!(Rotation::from_degrees(bad), None);
        }
        for f in Flip::ALL {
            assert_eq!(Flip::parse(&f.as_str().to_uppercase()), Some(f));
        }
        assert_eq!(Flip::parse("diagonal"), None);
    }

    #[test]
    fn rotation_converts_to_the_muxers() {
        assert_eq!(fmp4::Rotation::from(Rotation::R0), fmp4::Rotation::None);
        assert_eq!(fmp4::Rotation::from(Rotation::R90), fmp4::Rotation::Cw90);
        assert_eq!(fmp4::Rotation::from(Rotation::R180), fmp4::Rotation::Cw180);
        assert_eq!(fmp4::Rotation::from(Rotation::R270), fmp4::Rotation::Cw270);
    }
}
