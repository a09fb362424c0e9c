use super::*;

/// ffmpeg 5.1's init segment for x264's 640x360 stream (15 fps) with
/// `-video_track_timescale 90000 -movflags
/// frag_every_frame+empty_moov+default_base_moof`.
const FFMPEG_INIT: &[u8] = include_bytes!("../../../tests/data/ffmpeg_640x360_init.mp4");

fn reference_track() -> VideoTrack {
    let avcc = find_box(
        FFMPEG_INIT,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )
    .unwrap();
    // stsd: version/flags, count, then avc1 (78 bytes of fields) with avcC.
    let avc1 = find_box(&avcc[8..], &[b"avc1"]).unwrap();
    let avcc = find_box(&avc1[78..], &[b"avcC"]).unwrap();
    let sps_len = usize::from(u16::from_be_bytes([avcc[6], avcc[7]]));
    let sps = &avcc[8..8 + sps_len];
    let pps_at = 8 + sps_len + 1;
    let pps_len = usize::from(u16::from_be_bytes([avcc[pps_at], avcc[pps_at + 1]]));
    let pps = &avcc[pps_at + 2..pps_at + 2 + pps_len];
    VideoTrack::new(sps, pps).unwrap()
}

/// Every box of a tree, depth first, as (path, whole body), descending into
/// the containers this muxer writes.
fn flatten(data: &[u8], path: &str, out: &mut Vec<(String, Vec<u8>)>) {
    for b in boxes(data) {
        let (kind, body) = b.unwrap();
        let name = format!("{path}/{}", String::from_utf8_lossy(&kind));
        out.push((name.clone(), body.to_vec()));
        match &kind {
            b"moov" | b"trak" | b"mdia" | b"minf" | b"dinf" | b"stbl" | b"mvex" | b"moof"
            | b"traf" => flatten(body, &name, out),
            _ => {}
        }
    }
}

#[test]
fn init_segment_matches_ffmpeg_box_for_box() {
    let ours = reference_track().init_segment(Rotation::None);
    let mut mine = Vec::new();
    flatten(&ours, "", &mut mine);
    let mut theirs = Vec::new();
    flatten(FFMPEG_INIT, "", &mut theirs);
    // ffmpeg adds udta (its name and version, "Lavf59..."), which a
    // live stream does not need; everything else is the same byte for byte,
    // avc1 with avcC and pasp included.
    let theirs: Vec<_> = theirs
        .into_iter()
        .filter(|(p, _)| !p.contains("udta"))
        .collect();
    let names = |v: &[(String, Vec<u8>)]| v.iter().map(|(p, _)| p.clone()).collect::<Vec<_>>();
    assert_eq!(names(&mine), names(&theirs));
    for ((path, a), (_, b)) in mine.iter().zip(&theirs) {
        if !path.ends_with("/moov") {
            assert_eq!(a, b, "{path}");
        }
    }
    assert_eq!(
        ours.len(),
        FFMPEG_INIT.len() - 98,
        "all but udta's 98 bytes"
    );
}

#[test]
fn codec_string_and_size_come_from_the_sps() {
    let track = reference_track();
    assert_eq!(track.codec_string(), "avc1.640016");
    assert_eq!((track.sps().width, track.sps().height), (640, 360));
}

#[test]
fn fragments_match_ffmpeg_frag_every_frame() {
    // ffmpeg's first two moofs for the same stream: an IDR of 9269 bytes
    // at 0, a P frame of 4702 bytes at 6000, 6000 ticks each.
    let first = "00000068 6d6f6f66 00000010 6d666864 00000000 00000001 00000050 74726166 \
                 0000001c 74666864 00020038 00000001 00001770 00002435 01010000 \
                 00000014 74666474 01000000 00000000 00000000 \
                 00000018 7472756e 00000005 00000001 00000070 02000000 \
                 0000243d 6d646174";
    let second = "00000064 6d6f6f66 00000010 6d666864 00000000 00000002 0000004c 74726166 \
                  0000001c 74666864 00020038 00000001 00001770 0000125e 01010000 \
                  00000014 74666474 01000000 00000000 00001770 \
                  00000014 7472756e 00000001 00000001 0000006c \
                  00001266 6d646174";
    let hex = |s: &str| -> Vec<u8> {
        let s: String = s.split_whitespace().collect();
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    };
    let mut f = Fragmenter::new();
    let idr = vec![7; 0x2435];
    let p = vec![9; 0x125E];
    let a = f.fragment(0, 6000, true, &idr);
    let b = f.fragment(6000, 6000, false, &p);
    assert_eq!(a[..a.len() - idr.len()], hex(first)[..]);
    assert_eq!(a[a.len() - idr.len()..], idr[..]);
    assert_eq!(b[..b.len() - p.len()], hex(second)[..]);
}

#[test]
fn rotation_sets_the_track_matrix_and_nothing_else() {
    let track = reference_track();
    let tkhd = |r| {
        let init = track.init_segment(r);
        find_box(&init, &[b"moov", b"trak", b"tkhd"])
            .unwrap()
            .to_vec()
    };
    let plain = tkhd(Rotation::None);
    // 640x360; a, b, c, d, tx, ty in 16.16.
    let turns = [
        (90, [0, 1, -1, 0, 360, 0]),
        (180, [-1, 0, 0, -1, 640, 360]),
        (270, [0, -1, 1, 0, 0, 640]),
    ];
    for (degrees, want) in turns {
        let r = Rotation::from_degrees(degrees).unwrap();
        let t = tkhd(r);
        assert_eq!(t.len(), plain.len());
        let m = |i: usize| {
            i32::from_be_bytes([t[40 + 4 * i], t[41 + 4 * i], t[42 + 4 * i], t[43 + 4 * i]])
        };
        let got = [m(0), m(1), m(3), m(4), m(6), m(7)];
        assert_eq!(got, want.map(|v| v * 0x1_0000), "{degrees}");
        assert_eq!([m(2), m(5), m(8)], [0, 0, 0x4000_0000]);
        assert_eq!(t[..40], plain[..40]);
        assert_eq!(t[76..], plain[76..], "width and height stay as coded");
    }
    assert_eq!(Rotation::from_degrees(45), None);
}

/// x264's Constrained Baseline 640x360 SPS.
const BASELINE_SPS: &[u8] = &[
    0x67, 0x42, 0xC0, 0x16, 0xD9, 0x00, 0xA0, 0x2F, 0xF9, 0x70, 0x11, 0, 0, 3, 0, 1, 0, 0, 3, 0,
    0x1E, 0x0F, 0x16, 0x2E, 0x48,
];

#[test]
fn baseline_avcc_has_no_high_profile_fields() {
    let track = VideoTrack::new(BASELINE_SPS, &[0x68, 0xCB, 0x8C, 0xB2]).unwrap();
    let init = track.init_segment(Rotation::None);
    let stsd = find_box(
        &init,
        &[b"moov", b"trak", b"mdia", b"minf", b"stbl", b"stsd"],
    )
    .unwrap();
    let avc1 = find_box(&stsd[8..], &[b"avc1"]).unwrap();
    let avcc = find_box(&avc1[78..], &[b"avcC"]).unwrap();
    assert_eq!(avcc.len(), 6 + 2 + BASELINE_SPS.len() + 1 + 2 + 4);
    assert_eq!(avcc[..4], [1, 0x42, 0xC0, 0x16]);
}

#[test]
fn bad_parameter_sets_are_refused() {
    assert!(VideoTrack::new(BASELINE_SPS, &[0x68]).is_ok());
    assert!(
        VideoTrack::new(&[0x68, 1], &[0x68]).is_err(),
        "a PPS for an SPS"
    );
    assert!(VideoTrack::new(BASELINE_SPS, &[]).is_err(), "no PPS");
}

#[test]
fn box_reader_stops_at_a_bad_size() {
    assert_eq!(boxes(&[0, 0, 0, 8, b'f', b'r', b'e', b'e']).count(), 1);
    assert!(boxes(&[0, 0, 0, 9, b'f', b'r', b'e', b'e']).any(|b| b.is_err()));
    assert!(boxes(&[0, 0, 0, 4, b'f', b'r', b'e', b'e']).any(|b| b.is_err()));
    assert!(boxes(&[0, 0]).any(|b| b.is_err()));
}

#[test]
fn a_fragment_tells_its_sequence_and_whether_it_is_a_keyframe() {
    let mut f = Fragmenter::new();
    let key = f.fragment(0, 3000, true, &[0, 0, 0, 1, 0x65]);
    let delta = f.fragment(3000, 3000, false, &[0, 0, 0, 1, 0x41]);
    assert_eq!(fragment_info(&key), Some((1, true)));
    assert_eq!(fragment_info(&delta), Some((2, false)));
    assert_eq!(fragment_info(b"not a fragment"), None);
    assert_eq!(fragment_info(&key[..20]), None);
}

#[test]
fn a_fragment_tells_its_decode_time() {
    let mut f = Fragmenter::new();
    let late = 5 * u64::from(u32::MAX);
    assert_eq!(
        decode_time(&f.fragment(late, 3000, true, &[0, 1])),
        Some(late)
    );
    assert_eq!(decode_time(&f.fragment(0, 3000, false, &[0, 1])), Some(0));
    assert_eq!(decode_time(b"not a fragment"), None);
}
