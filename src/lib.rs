//! printcam: one upstream per printer camera, fanned out as MJPEG streams and
//! JPEG snapshots over plain HTTP. See README.md for the architecture.

pub mod camera;
pub mod cameras;
pub mod cli;
pub mod config;
pub mod error;
pub mod ffmpeg;
pub mod frame;
pub mod http;
pub mod hub;
pub mod jpeg;
pub mod json;
pub mod mjpeg;
pub mod redact;
pub mod registry;
pub mod signals;
pub mod source;
pub mod sources;
pub mod tls;
pub mod tls_proxy;
pub mod urlguard;
