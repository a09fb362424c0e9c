//! printcam: one upstream per printer camera, fanned out as MJPEG streams and
//! JPEG snapshots over plain HTTP. See docs/development.md for the architecture.

// Without either feature rusqlite would quietly link whatever libsqlite3 the
// linker finds; make the choice explicit instead.
#[cfg(not(any(feature = "bundled-sqlite", feature = "system-sqlite")))]
compile_error!(
    "printcam needs an SQLite: keep the default `bundled-sqlite` feature, or build with \
     `--no-default-features --features system-sqlite` to link the system libsqlite3 \
     (Debian: libsqlite3-dev, OpenWrt: libsqlite3)"
);

pub mod camera;
pub mod cameras;
pub mod cli;
pub mod config;
pub mod error;
pub mod ffmpeg;
pub mod frame;
pub mod gop;
pub mod hls;
pub mod http;
pub mod hub;
pub mod jpeg;
pub mod json;
pub mod logging;
pub mod malloc;
pub mod media;
pub mod orientation;
pub mod redact;
pub mod registry;
pub mod running;
pub mod signals;
pub mod source;
pub mod sources;
pub mod sync;
pub mod terminal;
pub mod tls;
pub mod urlguard;

// Bambu's CAs are part of TLS to printers; the old path stays.
pub use tls::bambu_ca;
