//! One module per camera protocol; each implements `crate::source::Source`.

pub mod demo;
mod http_client;
pub mod mjpeg_http;
pub mod snapshot_http;
