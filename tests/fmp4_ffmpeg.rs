//! The H.264 building blocks against ffmpeg: x264 makes a 640x360 stream,
//! ffmpeg muxes it as fragmented MP4 for reference, printcam muxes the same
//! frames (directly, and after a trip through RTP packets), and ffprobe
//! reads printcam's file back.

#[path = "support/programs.rs"]
mod programs;

use printcam::media::fmp4::{boxes, find_box, Fragmenter, Rotation, VideoTrack};
use printcam::media::h264::{
    annex_b_nals, nal_type, to_length_prefixed, NAL_IDR, NAL_PPS, NAL_SLICE, NAL_SPS,
};
use printcam::media::rtp_h264::{packetize, Depacketizer, Packetizer};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

const FRAMES: usize = 30;
/// 15 fps in 90 kHz ticks.
const FRAME_TICKS: u32 = 6000;

fn have_tools() -> bool {
    programs::have_ffmpeg() && programs::require("ffprobe", "-version", "ffmpeg")
}

/// A fresh directory for one test's files.
fn workdir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("printcam-fmp4-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("create temp dir");
    dir
}

fn run(cmd: &mut Command) -> Vec<u8> {
    let out = cmd.stdin(Stdio::null()).output().expect("run program");
    assert!(
        out.status.success(),
        "{cmd:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// 30 frames of testsrc2 at 640x360, 15 fps, a keyframe every 15, no B
/// frames: the Annex B stream.
fn x264_stream(dir: &Path) -> PathBuf {
    let path = dir.join("in.h264");
    run(Command::new("ffmpeg")
        .args(["-nostdin", "-loglevel", "error", "-y", "-f", "lavfi"])
        .args(["-i", "testsrc2=size=640x360:rate=15", "-frames:v", "30"])
        .args(["-c:v", "libx264", "-g", "15", "-bf", "0", "-f", "h264"])
        .arg(&path));
    path
}

/// ffmpeg's fragmented MP4 of `input` with `movflags` (and a rotation).
fn ffmpeg_mp4(input: &Path, out: &Path, movflags: &str, rotate: u32) -> Vec<u8> {
    run(Command::new("ffmpeg")
        .args([
            "-nostdin",
            "-loglevel",
            "error",
            "-y",
            "-f",
            "h264",
            "-framerate",
            "15",
        ])
        .arg("-i")
        .arg(input)
        .args(["-c", "copy", "-video_track_timescale", "90000"])
        .args(["-metadata:s:v", &format!("rotate={rotate}")])
        .args(["-movflags", movflags])
        .arg(out));
    std::fs::read(out).expect("read ffmpeg's mp4")
}

/// The stream's access units: x264 writes one slice per frame, so a unit
/// ends at each slice, with the SPS, PPS and SEI before it included.
fn access_units(annex_b: &[u8]) -> Vec<Vec<&[u8]>> {
    let mut units = Vec::new();
    let mut unit = Vec::new();
    for nal in annex_b_nals(annex_b) {
        unit.push(nal);
        if matches!(nal_type(nal[0]), NAL_SLICE | NAL_IDR) {
            units.push(std::mem::take(&mut unit));
        }
    }
    units
}

fn first_of(units: &[Vec<&[u8]>], kind: u8) -> Vec<u8> {
    units
        .iter()
        .flatten()
        .find(|n| nal_type(n[0]) == kind)
        .expect("parameter set in the stream")
        .to_vec()
}

fn track_of(units: &[Vec<&[u8]>]) -> VideoTrack {
    VideoTrack::new(&first_of(units, NAL_SPS), &first_of(units, NAL_PPS)).expect("track")
}

/// A work directory named for the test, x264's stream in it, its bytes.
fn setup(name: &str) -> (PathBuf, PathBuf, Vec<u8>) {
    let dir = workdir(name);
    let input = x264_stream(&dir);
    let annex_b = std::fs::read(&input).expect("read stream");
    (dir, input, annex_b)
}

fn is_keyframe(unit: &[&[u8]]) -> bool {
    unit.iter().any(|n| nal_type(n[0]) == NAL_IDR)
}

/// printcam's file: init segment, then one fragment per sample, the k-th
/// at `timing[k]` (decode time, duration), one frame apart if absent.
fn mux(track: &VideoTrack, samples: &[(Vec<u8>, bool)], timing: &[(u64, u32)]) -> Vec<u8> {
    let mut out = track.init_segment(Rotation::None);
    let mut fragmenter = Fragmenter::new();
    for (k, (sample, keyframe)) in samples.iter().enumerate() {
        let steady = (k as u64 * u64::from(FRAME_TICKS), FRAME_TICKS);
        let (time, duration) = timing.get(k).copied().unwrap_or(steady);
        out.extend(fragmenter.fragment(time, duration, *keyframe, sample));
    }
    out
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// Each fragment's decode time (tfdt) and default sample duration (tfhd).
fn timing(file: &[u8]) -> Vec<(u64, u32)> {
    top_level(file)
        .iter()
        .filter(|(kind, _)| kind == b"moof")
        .map(|(_, moof)| {
            let tfhd = find_box(&moof[8..], &[b"traf", b"tfhd"]).expect("tfhd");
            let tfdt = find_box(&moof[8..], &[b"traf", b"tfdt"]).expect("tfdt");
            assert_eq!(
                be32(tfhd, 0),
                0x02_0038,
                "tfhd flags as printcam writes them"
            );
            assert_eq!(tfdt[0], 1, "64-bit tfdt");
            let time = u64::from(be32(tfdt, 4)) << 32 | u64::from(be32(tfdt, 8));
            (time, be32(tfhd, 8))
        })
        .collect()
}

/// Top-level boxes as (type, whole box bytes).
fn top_level(file: &[u8]) -> Vec<([u8; 4], Vec<u8>)> {
    let mut at = 0;
    boxes(file)
        .map(|b| {
            let (kind, body) = b.expect("well-formed box");
            let whole = file[at..at + 8 + body.len()].to_vec();
            at += 8 + body.len();
            (kind, whole)
        })
        .collect()
}

/// (size, sync) of every sample, from each traf's tfhd defaults and trun.
fn samples(file: &[u8]) -> Vec<(u32, bool)> {
    let be = be32;
    let mut out = Vec::new();
    for (kind, moof) in top_level(file) {
        if &kind != b"moof" {
            continue;
        }
        let tfhd = find_box(&moof[8..], &[b"traf", b"tfhd"]).expect("tfhd");
        let trun = find_box(&moof[8..], &[b"traf", b"trun"]).expect("trun");
        let tf_flags = be(tfhd, 0) & 0xFF_FFFF;
        // track id, then the optional fields in order.
        let mut at = 8;
        at += if tf_flags & 0x01 != 0 { 8 } else { 0 };
        at += if tf_flags & 0x02 != 0 { 4 } else { 0 };
        at += if tf_flags & 0x08 != 0 { 4 } else { 0 };
        let default_size = be(tfhd, at);
        let default_flags = be(tfhd, at + 4);
        assert_eq!(tf_flags & 0x30, 0x30, "tfhd with default size and flags");
        let flags = be(trun, 0) & 0xFF_FFFF;
        let count = be(trun, 4);
        let mut at = 8 + if flags & 0x01 != 0 { 4 } else { 0 };
        let first_flags = (flags & 0x04 != 0).then(|| {
            at += 4;
            be(trun, at - 4)
        });
        for i in 0..count {
            let mut size = default_size;
            let mut sample_flags = if i == 0 {
                first_flags.unwrap_or(default_flags)
            } else {
                default_flags
            };
            for (bit, field) in [(0x100, 0), (0x200, 1), (0x400, 2), (0x800, 3)] {
                if flags & bit != 0 {
                    match field {
                        1 => size = be(trun, at),
                        2 => sample_flags = be(trun, at),
                        _ => {}
                    }
                    at += 4;
                }
            }
            out.push((size, sample_flags & 0x0001_0000 == 0));
        }
    }
    out
}

#[test]
fn fragments_match_ffmpeg_byte_for_byte_and_samples_match_its_gop_fragments() {
    if !have_tools() {
        return;
    }
    let (dir, input, annex_b) = setup("bytes");
    let units = access_units(&annex_b);
    assert_eq!(units.len(), FRAMES);
    let track = track_of(&units);
    let samples_in: Vec<(Vec<u8>, bool)> = units
        .iter()
        .map(|u| (to_length_prefixed(u.iter().copied()), is_keyframe(u)))
        .collect();

    // With one fragment per frame ffmpeg's file is ours, box for box, but
    // for the boxes only ffmpeg writes: udta in moov (its name and
    // version) and mfra at the end (a random-access index for files, of no
    // use to a live stream). ffmpeg's times stray by a tick now and then
    // (rounding from the raw stream's 1/1200000 time base); printcam is
    // given the same times so the rest can be compared byte for byte.
    let every = ffmpeg_mp4(
        &input,
        &dir.join("every.mp4"),
        "frag_every_frame+empty_moov+default_base_moof",
        0,
    );
    let ffmpeg_timing = timing(&every);
    for (k, (time, duration)) in ffmpeg_timing.iter().enumerate() {
        assert!(time.abs_diff(k as u64 * 6000) <= 2, "{ffmpeg_timing:?}");
        assert!(duration.abs_diff(FRAME_TICKS) <= 1, "{ffmpeg_timing:?}");
    }
    let ours = mux(&track, &samples_in, &ffmpeg_timing);
    let theirs = top_level(&every);
    let mine = top_level(&ours);
    let theirs: Vec<_> = theirs.into_iter().filter(|(k, _)| k != b"mfra").collect();
    assert_eq!(
        theirs.len(),
        mine.len(),
        "ftyp, moov and a moof+mdat per frame"
    );
    for (i, ((k1, a), (k2, b))) in mine.iter().zip(&theirs).enumerate() {
        assert_eq!(k1, k2, "box {i}");
        if k1 == b"moov" {
            let strip_udta = |m: &[u8]| {
                boxes(&m[8..])
                    .map(|b| b.expect("box"))
                    .filter(|(k, _)| k != b"udta")
                    .map(|(k, body)| (k, body.to_vec()))
                    .collect::<Vec<_>>()
            };
            assert_eq!(strip_udta(a), strip_udta(b), "moov without udta");
        } else {
            assert!(a == b, "box {i} ({}) differs", String::from_utf8_lossy(k1));
        }
    }

    // ffmpeg's usual live flags put a GOP in each fragment; the samples
    // (sizes, sync flags) are the same, only grouped differently.
    let gop = ffmpeg_mp4(
        &input,
        &dir.join("gop.mp4"),
        "frag_keyframe+empty_moov+default_base_moof",
        0,
    );
    let gop_samples = samples(&gop);
    assert_eq!(gop_samples.len(), FRAMES);
    assert_eq!(samples(&ours), gop_samples);
    assert_eq!(gop_samples.iter().filter(|s| s.1).count(), 2, "two GOPs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rotation_matrices_match_ffmpeg() {
    if !have_tools() {
        return;
    }
    let (dir, input, annex_b) = setup("rotation");
    let units = access_units(&annex_b);
    let track = track_of(&units);
    // ffmpeg 5.1 takes `rotate=N` as N degrees counterclockwise (ffprobe
    // then shows `rotation=N`), printcam's rotations are clockwise (as EXIF
    // orientation and phones' portrait videos): ffmpeg's 90 is printcam's
    // 270. ffmpeg 5.1 writes no translation; printcam moves the turned
    // picture back to the origin as phones and older ffmpeg do (players
    // that only read the rotation ignore it). All else is the same.
    let matrix = 40..64;
    let translation = 64..72;
    for degrees in [0, 90, 180, 270] {
        let theirs = ffmpeg_mp4(
            &input,
            &dir.join(format!("r{degrees}.mp4")),
            "frag_keyframe+empty_moov+default_base_moof",
            degrees,
        );
        let rotation = Rotation::from_degrees((360 - degrees) % 360).expect("a right angle");
        let ours = track.init_segment(rotation);
        let path = [b"moov", b"trak", b"tkhd"];
        let (ours, theirs) = (
            find_box(&ours, &path).expect("tkhd"),
            find_box(&theirs, &path).expect("tkhd"),
        );
        assert_eq!(
            ours[matrix.clone()],
            theirs[matrix.clone()],
            "rotation at {degrees}°"
        );
        assert_eq!(ours[..matrix.start], theirs[..matrix.start]);
        assert_eq!(ours[translation.end..], theirs[translation.end..]);
        assert_eq!(theirs[translation.clone()], [0; 8]);
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn rtp_round_trip_muxes_to_a_file_ffprobe_reads() {
    if !have_tools() {
        return;
    }
    let (dir, _input, annex_b) = setup("probe");
    let units = access_units(&annex_b);
    // Through RTP: 1200-byte packets (STAP-A for SPS+PPS+SEI, FU-A for
    // the slices), back into access units.
    let mut packetizer = Packetizer {
        payload_type: 96,
        ssrc: 0x5EED,
        sequence: 65_000,
    };
    let mut depacketizer = Depacketizer::default();
    let mut received = Vec::new();
    for (k, unit) in units.iter().enumerate() {
        let ts = 1_000_000u32.wrapping_add(k as u32 * FRAME_TICKS);
        for packet in packetizer.packets(&packetize(unit, 1200), ts) {
            received.extend(depacketizer.push(&packet, Duration::from_millis(66 * k as u64)));
        }
    }
    assert_eq!(received.len(), FRAMES, "{:?}", depacketizer.stats());
    let times: Vec<u64> = received.iter().map(|a| a.time).collect();
    assert_eq!(
        times,
        (0..FRAMES as u64)
            .map(|k| k * u64::from(FRAME_TICKS))
            .collect::<Vec<_>>()
    );
    let sps = depacketizer.sps().expect("in-band SPS").to_vec();
    let pps = depacketizer.pps().expect("in-band PPS").to_vec();
    let track = VideoTrack::new(&sps, &pps).expect("track");
    assert_eq!(track.codec_string(), "avc1.640016");
    let samples_in: Vec<(Vec<u8>, bool)> =
        received.into_iter().map(|a| (a.data, a.keyframe)).collect();
    let file = dir.join("ours.mp4");
    std::fs::write(&file, mux(&track, &samples_in, &[])).expect("write mp4");

    let probe = run(Command::new("ffprobe")
        .args(["-v", "error", "-count_frames", "-select_streams", "v:0"])
        .args([
            "-show_entries",
            "stream=codec_name,width,height,nb_read_frames",
            "-of",
            "csv=p=0",
        ])
        .arg(&file));
    assert_eq!(String::from_utf8_lossy(&probe).trim(), "h264,640,360,30");
    // And every frame decodes without a complaint.
    let decode = Command::new("ffmpeg")
        .args(["-nostdin", "-v", "error", "-i"])
        .arg(&file)
        .args(["-f", "null", "-"])
        .stdin(Stdio::null())
        .output()
        .expect("run ffmpeg");
    assert!(
        decode.status.success() && decode.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&decode.stderr)
    );
    let _ = std::fs::remove_dir_all(&dir);
}
