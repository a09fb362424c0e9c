//! One module per camera protocol; each implements `crate::source::Source`.
pub mod rtsp;
