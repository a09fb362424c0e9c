//! The current group of pictures of one H.264 camera: its MP4 init segment
//! and the fragments from the last keyframe on, so a new `<video>` viewer
//! starts at once with a picture it can decode. Written by the camera's
//! source right before it hands each fragment to the hub; read by viewers
//! as they join. The same fragments feed the camera's HLS segments.

use crate::hls::Segments;
use crate::media::{MAX_GOP_BYTES, MAX_GOP_FRAMES};
use crate::sync::lock;
use std::sync::{Arc, Mutex};

#[derive(Default)]
pub struct Gop {
    state: Mutex<State>,
    segments: Segments,
}

#[derive(Default)]
struct State {
    init: Option<Arc<[u8]>>,
    /// The track's SPS and PPS as Annex B, for a decoder fed the frames.
    parameter_sets: Option<Arc<[u8]>>,
    /// Bumped whenever the init segment changes (new picture size).
    generation: u64,
    fragments: Vec<Arc<[u8]>>,
    bytes: usize,
    /// The group outgrew the limits: nothing is kept until the next keyframe.
    overflowed: bool,
}

/// What a joining viewer sends first.
pub struct Joined<T> {
    pub init: Arc<[u8]>,
    pub generation: u64,
    /// From a keyframe on; empty when no whole group is kept.
    pub fragments: Vec<Arc<[u8]>>,
    /// What `join`'s caller made while nothing could be added.
    pub value: T,
}

impl Gop {
    pub fn new() -> Arc<Gop> {
        Arc::new(Gop::default())
    }

    /// Sets the init segment and the parameter sets it was made from (as
    /// Annex B); a different init segment starts a new generation and drops
    /// the group, which belongs to the old one.
    pub fn set_init(&self, init: Vec<u8>, parameter_sets: Vec<u8>) {
        let mut st = lock(&self.state);
        if st.init.as_deref() == Some(&init[..]) {
            return;
        }
        st.init = Some(Arc::from(init));
        st.parameter_sets = Some(Arc::from(parameter_sets));
        st.generation += 1;
        st.clear();
        self.segments.reset();
    }

    /// Forgets the group (a new camera session: its first frame is a
    /// keyframe, older frames are of another timeline).
    pub fn clear(&self) {
        lock(&self.state).clear();
        self.segments.reset();
    }

    /// Adds the fragment of the frame the source is about to hand on.
    pub fn push(&self, fragment: &[u8], keyframe: bool) {
        let fragment: Arc<[u8]> = Arc::from(fragment);
        self.segments.push(&fragment, keyframe);
        let mut st = lock(&self.state);
        if keyframe {
            st.clear();
        } else if st.overflowed || st.fragments.is_empty() {
            return;
        }
        if st.bytes + fragment.len() > MAX_GOP_BYTES || st.fragments.len() >= MAX_GOP_FRAMES {
            st.clear();
            st.overflowed = true;
            return;
        }
        st.bytes += fragment.len();
        st.fragments.push(fragment);
    }

    /// The init segment and the group, with `subscribe` called while no
    /// fragment can be added: every later fragment reaches what it made.
    /// None while no init segment is known.
    pub fn join<T>(&self, subscribe: impl FnOnce() -> T) -> Option<Joined<T>> {
        let st = lock(&self.state);
        let init = st.init.clone()?;
        let value = subscribe();
        Some(Joined {
            init,
            generation: st.generation,
            fragments: st.fragments.clone(),
            value,
        })
    }

    pub fn generation(&self) -> u64 {
        lock(&self.state).generation
    }

    /// The init segment and its generation, once known.
    pub fn init(&self) -> Option<(Arc<[u8]>, u64)> {
        let st = lock(&self.state);
        Some((st.init.clone()?, st.generation))
    }

    /// The current track's SPS and PPS (Annex B), once known.
    pub fn parameter_sets(&self) -> Option<Arc<[u8]>> {
        lock(&self.state).parameter_sets.clone()
    }

    /// The camera's HLS segments, cut from the same fragments.
    pub fn segments(&self) -> &Segments {
        &self.segments
    }
}

/// Whether a fragment goes to a consumer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    Send,
    /// It would not decode: the consumer missed a frame since its keyframe.
    Skip,
    /// Sent already (with the group of pictures the consumer started with).
    Already,
}

/// A consumer's place in the camera's fragments (a `<video>` viewer, the
/// decoder of its MJPEG): after a frame it missed, it skips to the next
/// keyframe (an H.264 frame cannot be left out alone: the ones after it
/// refer to it).
#[derive(Debug, Default)]
pub struct Gate {
    /// The sequence number of the last fragment sent.
    last: Option<u32>,
}

impl Gate {
    pub fn admit(&self, fragment: &[u8]) -> Admit {
        let Some((seq, keyframe)) = crate::media::fmp4::fragment_info(fragment) else {
            return Admit::Skip;
        };
        match self.last {
            // Wrapping: at 30 fps the numbers go round after four years.
            Some(last) if seq.wrapping_sub(last) as i32 <= 0 => Admit::Already,
            Some(last) if seq == last.wrapping_add(1) => Admit::Send,
            _ if keyframe => Admit::Send,
            _ => Admit::Skip,
        }
    }

    pub fn sent(&mut self, fragment: &[u8]) {
        if let Some((seq, _)) = crate::media::fmp4::fragment_info(fragment) {
            self.last = Some(seq);
        }
    }
}

impl State {
    fn clear(&mut self) {
        self.fragments.clear();
        self.bytes = 0;
        self.overflowed = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sizes(j: &Joined<()>) -> Vec<usize> {
        j.fragments.iter().map(|f| f.len()).collect()
    }

    #[test]
    fn the_group_starts_at_the_last_keyframe() {
        let gop = Gop::new();
        assert!(gop.join(|| ()).is_none(), "no init segment yet");
        gop.set_init(vec![1, 2, 3], Vec::new());
        gop.push(&[0; 1], false);
        assert!(
            sizes(&gop.join(|| ()).unwrap()).is_empty(),
            "no keyframe yet"
        );
        gop.push(&[0; 2], true);
        gop.push(&[0; 3], false);
        assert_eq!(sizes(&gop.join(|| ()).unwrap()), [2, 3]);
        gop.push(&[0; 4], true);
        let joined = gop.join(|| ()).unwrap();
        assert_eq!(sizes(&joined), [4]);
        assert_eq!(&joined.init[..], [1, 2, 3]);
    }

    #[test]
    fn a_new_init_segment_is_a_new_generation_without_the_old_group() {
        let gop = Gop::new();
        gop.set_init(vec![1], Vec::new());
        gop.push(&[0; 2], true);
        gop.set_init(vec![1], Vec::new());
        assert_eq!(gop.generation(), 1);
        assert_eq!(sizes(&gop.join(|| ()).unwrap()), [2]);
        gop.set_init(vec![9], Vec::new());
        assert_eq!(gop.generation(), 2);
        assert!(sizes(&gop.join(|| ()).unwrap()).is_empty());
    }

    #[test]
    fn a_group_past_the_limit_is_dropped_until_the_next_keyframe() {
        let gop = Gop::new();
        gop.set_init(vec![1], Vec::new());
        gop.push(&[0; 10], true);
        for _ in 0..MAX_GOP_FRAMES {
            gop.push(&[0; 10], false);
        }
        assert!(sizes(&gop.join(|| ()).unwrap()).is_empty());
        gop.push(&[0; 10], false);
        assert!(sizes(&gop.join(|| ()).unwrap()).is_empty());
        gop.push(&[0; 5], true);
        assert_eq!(sizes(&gop.join(|| ()).unwrap()), [5]);
        let big = vec![0u8; MAX_GOP_BYTES];
        gop.push(&big, false);
        assert!(sizes(&gop.join(|| ()).unwrap()).is_empty());
    }
}
