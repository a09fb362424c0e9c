//! What a turned camera costs per frame in the hub: writing the EXIF
//! Orientation segment into bench/frame-1280x720.jpg (`set_orientation`,
//! one move of the frame's bytes), beside the copy every frame gets anyway
//! (`Vec` into the shared `Arc<[u8]>`).
//!
//! The latest frame is kept between rounds, as the hub keeps it for
//! snapshots. Without that, each round's three 65 KB blocks cross glibc's
//! 128 KB trim threshold and page faults (~90 us a round) swamp the ~2 us
//! the segment costs.
//!
//! ```sh
//! cargo run --release --example exif_bench [ROUNDS]
//! ```

use printcam::media::exif::set_orientation;
use printcam::orientation::{Flip, Orientation, Rotation};
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let rounds: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20_000);
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("bench/frame-1280x720.jpg");
    let frame = match std::fs::read(&path) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("exif_bench: {}: {e}", path.display());
            std::process::exit(1);
        }
    };
    let turned = Orientation {
        rotation: Rotation::R90,
        flip: Flip::None,
    };
    // As in the hub: the camera's Vec, then the shared frame, which stays
    // (the latest, for snapshots) until the next one replaces it.
    let mut latest: Arc<[u8]> = Arc::from(frame.clone());
    let as_is = time(rounds, || {
        let jpeg = black_box(frame.clone());
        latest = Arc::from(jpeg);
    });
    let with_tag = time(rounds, || {
        let mut jpeg = black_box(frame.clone());
        black_box(set_orientation(&mut jpeg, black_box(turned)));
        latest = Arc::from(jpeg);
    });
    black_box(latest);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / f64::from(rounds);
    println!(
        "{} KB frame, {rounds} rounds: clone + Arc {:.1} us, clone + tag + Arc {:.1} us, \
         the tag adds {:.1} us per frame",
        frame.len() / 1024,
        per(as_is),
        per(with_tag),
        per(with_tag.saturating_sub(as_is))
    );
}

fn time(rounds: u32, mut f: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..rounds {
        f();
    }
    start.elapsed()
}
