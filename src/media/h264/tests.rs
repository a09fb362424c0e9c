use super::*;

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

/// SPSs written by libx264 (ffmpeg 5.1, `-f lavfi -i testsrc2=size=WxH`),
/// with the size, profile and level ffprobe reports for the same streams.
struct Case {
    what: &'static str,
    sps: &'static str,
    width: u32,
    height: u32,
    codec: &'static str,
}

const CASES: &[Case] = &[
    Case {
        what: "x264 High 640x360",
        sps: "67640016acb201405ff2e0220000030002000003003c1e2c5c90",
        width: 640,
        height: 360,
        codec: "avc1.640016",
    },
    Case {
        what: "x264 High 1280x720",
        sps: "6764001facb200a00b760220000003002000000303c1e30649",
        width: 1280,
        height: 720,
        codec: "avc1.64001f",
    },
    Case {
        what: "x264 High 1920x1080 (coded 1088, cropped)",
        sps: "67640028acb200f0044fcb8088000003000800000300f078c19240",
        width: 1920,
        height: 1080,
        codec: "avc1.640028",
    },
    Case {
        what: "x264 Main 1920x1080",
        sps: "674d4028eca03c0113f2e0220000030002000003003c1e30632c",
        width: 1920,
        height: 1080,
        codec: "avc1.4d4028",
    },
    Case {
        what: "x264 Constrained Baseline 640x360",
        sps: "6742c016d900a02ff970110000030001000003001e0f162e48",
        width: 640,
        height: 360,
        codec: "avc1.42c016",
    },
    Case {
        what: "x264 interlaced 1920x1080 (field pairs, cropped)",
        sps: "67640028acd94078044fde0220000003002000000303c3e2c5b2c0",
        width: 1920,
        height: 1080,
        codec: "avc1.640028",
    },
    Case {
        what: "x264 High 4:4:4 642x362 (crop unit 1)",
        sps: "67f40016919b281485fc7cf80880000003008000000f078b16cb",
        width: 642,
        height: 362,
        codec: "avc1.f40016",
    },
    Case {
        what: "x264 High 4:2:2 642x362 (crop units 2 and 1)",
        sps: "677a0016bcd940a42fe227c044000003000400000300783c58b658",
        width: 642,
        height: 362,
        codec: "avc1.7a0016",
    },
    Case {
        what: "x264 High 10 1280x720",
        sps: "676e001fa6cd9405005bb0110000030001000003001e0f183196",
        width: 1280,
        height: 720,
        codec: "avc1.6e001f",
    },
    Case {
        what: "x264 High 320x240",
        sps: "6764000cacd94141fb0110000003001000000301e0f1429960",
        width: 320,
        height: 240,
        codec: "avc1.64000c",
    },
    // x264 puts scaling matrices in the PPS, so this is the 640x360 SPS
    // rewritten with seq_scaling_matrix_present_flag set: an explicit flat
    // 4x4 list, a "use default" list, an 8x8 list that stops early, absent
    // ones. ffmpeg decodes the 640x360 stream with it in place of the
    // original without an error, and ffprobe reports 640x360.
    Case {
        what: "640x360 with SPS scaling lists",
        sps: "67640016ad843fffc221080215900a02ff970110000003001000000301e0f162e480",
        width: 640,
        height: 360,
        codec: "avc1.640016",
    },
];

#[test]
fn sps_sizes_profiles_and_levels_of_real_encoders() {
    for case in CASES {
        let sps = Sps::parse(&hex(case.sps)).unwrap_or_else(|e| panic!("{}: {e}", case.what));
        assert_eq!(
            (sps.width, sps.height),
            (case.width, case.height),
            "{}",
            case.what
        );
        assert_eq!(sps.codec_string(), case.codec, "{}", case.what);
    }
}

#[test]
fn sps_chroma_format_bit_depth_and_field_coding() {
    let find = |what: &str| {
        let case = CASES.iter().find(|c| c.what.starts_with(what)).unwrap();
        Sps::parse(&hex(case.sps)).unwrap()
    };
    let hi = find("x264 High 640x360");
    assert_eq!((hi.chroma_format_idc, hi.bit_depth_luma), (1, 8));
    assert!(hi.frame_mbs_only);
    assert!(!find("x264 interlaced").frame_mbs_only);
    assert_eq!(find("x264 High 4:4:4").chroma_format_idc, 3);
    assert_eq!(find("x264 High 4:2:2").chroma_format_idc, 2);
    let ten = find("x264 High 10");
    assert_eq!((ten.bit_depth_luma, ten.bit_depth_chroma), (10, 10));
    // Baseline has no chroma fields: 4:2:0, 8 bits.
    let base = find("x264 Constrained Baseline");
    assert_eq!((base.chroma_format_idc, base.bit_depth_luma), (1, 8));
}

#[test]
fn sps_refuses_what_is_not_one_and_never_panics_on_truncation() {
    assert!(Sps::parse(&[]).is_err());
    assert!(Sps::parse(&hex("68ebc3cb22c0")).is_err(), "a PPS");
    for case in CASES {
        let full = hex(case.sps);
        let whole = Sps::parse(&full).unwrap();
        // The fields read come first (the VUI that follows is not read): a
        // cut either fails or gives the same answer.
        for len in 0..full.len() {
            if let Ok(cut) = Sps::parse(&full[..len]) {
                assert_eq!(cut, whole, "{} cut at {len}", case.what);
            }
        }
        assert!(Sps::parse(&full[..5]).is_err(), "{}", case.what);
    }
}

#[test]
fn sps_cropping_away_the_whole_picture_is_refused() {
    // Baseline, 1x1 macroblocks: sps_id 0, log2_max_frame_num 0, poc type 2,
    // refs 0, gaps 0, width-1 0, height-1 0, frame_mbs_only 1, direct_8x8 1,
    // cropping 1, then left/right/top/bottom and the stop bit.
    let head = "1 1 011 1 0 1 1 1 1 1";
    // Left 8 chroma samples (0001001) are 16 pixels: nothing left.
    let nal = nal_from_bits(
        0x67,
        &[0x42, 0x00, 0x0A],
        &format!("{head} 0001001 1 1 1 1"),
    );
    let e = Sps::parse(&nal).unwrap_err();
    assert!(e.to_string().contains("cropping"), "{e}");
    // Left 7 (0001000) leaves 2 pixels.
    let nal = nal_from_bits(
        0x67,
        &[0x42, 0x00, 0x0A],
        &format!("{head} 0001000 1 1 1 1"),
    );
    let sps = Sps::parse(&nal).unwrap();
    assert_eq!((sps.width, sps.height), (2, 16));
}

#[test]
fn sps_with_pic_order_count_type_1() {
    // Baseline 16x16, poc type 1 (010), delta_always_zero 1, offsets
    // se 0 (1) and se 0 (1), cycle 2 (011) with se 1 (010) and se -1 (011),
    // then refs 0 (1), gaps 0, 1x1 MBs (1, 1), frame_mbs_only 1, direct 1,
    // no cropping 0, stop bit.
    let bits = "1 1 010 1 1 1 011 010 011 1 0 1 1 1 1 0 1";
    let nal = nal_from_bits(0x67, &[0x42, 0x00, 0x0A], bits);
    let sps = Sps::parse(&nal).unwrap();
    assert_eq!((sps.width, sps.height), (16, 16));
}

/// A NAL unit of `header`, `bytes`, then the bits of `bits` (spaces ignored),
/// zero-padded to a byte.
fn nal_from_bits(header: u8, bytes: &[u8], bits: &str) -> Vec<u8> {
    let mut nal = vec![header];
    nal.extend_from_slice(bytes);
    let bits: Vec<u8> = bits
        .bytes()
        .filter(|b| *b != b' ')
        .map(|b| b - b'0')
        .collect();
    for chunk in bits.chunks(8) {
        let mut byte = 0;
        for (i, bit) in chunk.iter().enumerate() {
            byte |= bit << (7 - i);
        }
        nal.push(byte);
    }
    nal
}

#[test]
fn emulation_prevention_bytes_are_removed_once() {
    assert_eq!(unescape(&[0, 0, 3, 1]), [0, 0, 1]);
    assert_eq!(unescape(&[0, 0, 3, 0, 0, 3]), [0, 0, 0, 0]);
    // A 03 not after two zeros stays, and so does the 03 right after a
    // removed one (the zero count starts again).
    assert_eq!(unescape(&[0, 3, 0, 0, 3, 3]), [0, 3, 0, 0, 3]);
}

#[test]
fn annex_b_splits_on_both_start_codes_and_trims_trailing_zeros() {
    let stream = [
        0xAA, 0, 0, 0, 1, 0x67, 1, 2, 0, 0, 1, 0x68, 3, 0, 0, 0, 0, 1, 0x65, 4, 5, 0, 0,
    ];
    let nals: Vec<&[u8]> = annex_b_nals(&stream).collect();
    assert_eq!(nals, [&[0x67, 1, 2][..], &[0x68, 3], &[0x65, 4, 5]]);
    assert_eq!(annex_b_nals(&[1, 2, 3]).count(), 0, "no start code");
    assert_eq!(annex_b_nals(&[0, 0, 1, 0, 0, 1]).count(), 0, "empty units");
}

#[test]
fn framings_round_trip() {
    let nals: [&[u8]; 3] = [&[0x67, 1], &[0x68], &[0x65, 0, 0, 3, 9]];
    let sample = to_length_prefixed(nals);
    assert_eq!(&sample[..6], &[0, 0, 0, 2, 0x67, 1]);
    let back: Vec<&[u8]> = length_prefixed_nals(&sample).map(Result::unwrap).collect();
    assert_eq!(back, nals);
    let annex_b = to_annex_b(back);
    assert_eq!(annex_b_nals(&annex_b).collect::<Vec<_>>(), nals);
    let mut bad = sample.clone();
    bad[3] = 200;
    assert!(length_prefixed_nals(&bad).any(|n| n.is_err()));
    assert!(length_prefixed_nals(&[0, 0]).any(|n| n.is_err()));
}

mod prop {
    use super::super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn sps_parse_never_panics(body in proptest::collection::vec(any::<u8>(), 0..64)) {
            let mut nal = vec![0x67];
            nal.extend_from_slice(&body);
            if let Ok(sps) = Sps::parse(&nal) {
                prop_assert!(sps.width > 0 && sps.width <= 8192);
                prop_assert!(sps.height > 0 && sps.height <= 16384);
            }
        }

        #[test]
        fn escaping_round_trips(rbsp in proptest::collection::vec(0u8..4, 0..64)) {
            // The inverse of unescape, as an encoder writes it.
            let mut escaped = Vec::new();
            let mut zeros = 0;
            for &b in &rbsp {
                if zeros >= 2 && b <= 3 {
                    escaped.push(3);
                    zeros = 0;
                }
                zeros = if b == 0 { zeros + 1 } else { 0 };
                escaped.push(b);
            }
            prop_assert_eq!(unescape(&escaped), rbsp);
        }
    }
}
