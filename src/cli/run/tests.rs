use super::*;
use crate::camera::RtspClient;
use crate::cli::args::tests::{args, patch_of};
use crate::orientation::{Flip, Rotation};
use crate::registry::Printer;
use std::sync::atomic::{AtomicUsize, Ordering};

const STDIN_CODE: &str = "FROMSTD4";

struct TestDir(PathBuf);

impl TestDir {
    fn new() -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("printcam-cli-{}-{n}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn db(&self) -> String {
        self.0.join("p.db").display().to_string()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn ctx(env: &[(&'static str, String)], terminal: bool) -> Context {
    let env = env.to_vec();
    Context {
        var: Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
        stdout_is_terminal: terminal,
        read_line: Box::new(|| Ok(format!("{STDIN_CODE}\n"))),
        stdin_is_terminal: false,
    }
}

/// Parses and runs one command line: (exit code, stdout, stderr).
fn exec(c: &Context, line: &[&str]) -> (i32, String, String) {
    let (mut out, mut err) = (Vec::new(), Vec::new());
    let code = match parse(&args(line)) {
        Ok(cmd) => run(cmd, c, &mut out, &mut err),
        Err(e) => report(&e, &mut err),
    };
    let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
    (code, text(out), text(err))
}

#[test]
fn add_list_show_never_print_the_access_code() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let add = [
        "printer",
        "add",
        "--name",
        "P1S",
        "--ip",
        "192.168.1.50",
        "--access-code",
        "SECRETAC",
    ];
    assert_eq!(exec(&c, &add), (0, "1\n".to_string(), String::new()));
    for line in [
        &["printer", "list"][..],
        &["printer", "list", "--json"],
        &["printer", "show", "1"],
    ] {
        let (code, out, err) = exec(&c, line);
        assert_eq!(code, 0, "{line:?}: {err}");
        assert!(out.contains("P1S"), "{out}");
        assert!(
            !out.contains("SECRETAC") && !err.contains("SECRETAC"),
            "{out}"
        );
    }
    let (_, show, _) = exec(&c, &["printer", "show", "1"]);
    assert!(show.contains("access code:     set"), "{show}");
}

#[test]
fn a_dash_reads_the_access_code_from_stdin() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let add = [
        "printer",
        "add",
        "--name",
        "a",
        "--ip",
        "10.0.0.5",
        "--access-code",
        "-",
    ];
    assert_eq!(exec(&c, &add).0, 0);
    let stored = |id| {
        Registry::open(Path::new(&dir.db()))
            .unwrap()
            .get(id)
            .unwrap()
            .unwrap()
    };
    assert_eq!(stored(1).access_code.as_deref(), Some(STDIN_CODE));
    exec(
        &c,
        &[
            "printer",
            "add",
            "--name",
            "b",
            "--ip",
            "10.0.0.6",
            "--access-code",
            "x",
        ],
    );
    assert_eq!(exec(&c, &["printer", "set", "2", "--access-code=-"]).0, 0);
    assert_eq!(stored(2).access_code.as_deref(), Some(STDIN_CODE));
}

#[test]
fn the_db_flag_wins_over_the_environment() {
    let (env_dir, flag_dir) = (TestDir::new(), TestDir::new());
    let c = ctx(&[("PRINTCAM_DB", env_dir.db())], false);
    let db = flag_dir.db();
    assert_eq!(
        exec(&c, &["printer", "add", "--name", "a", "--db", &db]).0,
        0
    );
    assert!(Path::new(&db).exists());
    assert!(!Path::new(&env_dir.db()).exists());
}

#[test]
fn runtime_errors_are_one_line_and_exit_1() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let (code, _, err) = exec(&c, &["printer", "show", "1"]);
    assert_eq!(code, 1);
    assert!(err.contains("does not exist"), "{err}");
    exec(&c, &["printer", "add", "--name", "a"]);
    let (code, out, err) = exec(&c, &["printer", "remove", "9"]);
    assert_eq!((code, out.as_str()), (1, ""));
    assert_eq!(err, "printcam: error: Printer not found\n");
}

#[test]
fn refused_input_is_a_usage_error_like_a_missing_flag() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let (code, _, err) = exec(&c, &["printer", "add", "--name", "b", "--ip", "10.0.0.5"]);
    assert_eq!(code, 2);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.contains("access code"), "{err}");
    assert_eq!(exec(&c, &["printer", "add", "--ip", "10.0.0.5"]).0, 2);
}

#[test]
fn set_remove_and_forget_cert_say_what_they_did() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    assert_eq!(exec(&c, &["printer", "add", "--name", "a"]).0, 0);
    let said = |line: &[&str]| exec(&c, line).1;
    assert_eq!(
        said(&["printer", "set", "1", "--name", "b"]),
        "printer 1 updated\n"
    );
    assert!(said(&["printer", "forget-cert", "1"]).starts_with("printer 1: certificate forgotten"));
    assert_eq!(said(&["printer", "remove", "1"]), "printer 1 removed\n");
}

#[test]
fn odd_codes_and_repeated_names_are_saved_with_a_warning() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let add = |name: &str, code: &str| {
        exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                name,
                "--ip",
                "10.0.0.5",
                "--access-code",
                code,
            ],
        )
    };
    let (code, _, err) = add("left", "1234");
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("warning: the access code has 4 characters"),
        "{err}"
    );
    assert!(!err.contains("1234"), "the code was shown: {err}");
    let (code, _, err) = add("Left", "12345678");
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("printer 1 is also called \"left\""), "{err}");
    assert_eq!(add("right", "12345678").2, "");
    let (code, _, err) = exec(
        &c,
        &[
            "printer",
            "add",
            "--name",
            "new",
            "--ip",
            "10.0.0.7",
            "--access-code",
            "12345678",
            "--model",
            "Z9 Ultra",
        ],
    );
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("model \"Z9 Ultra\" is not one printcam knows"),
        "{err}"
    );
}

#[test]
fn unknown_commands_get_a_suggestion() {
    let err = |line: &[&str]| exec(&ctx(&[], false), line).2;
    assert!(err(&["prnter", "list"]).contains("did you mean \"printer\""));
    assert!(err(&["snap", "1"]).contains("did you mean \"snapshot\""));
    assert!(err(&["printer", "lst"]).contains("did you mean \"list\""));
    assert!(!err(&["zzzzzzz"]).contains("did you mean"));
    assert_eq!(exec(&ctx(&[], false), &["help", "--help"]).0, 0);
}

#[test]
fn usage_errors_are_one_line_and_exit_2() {
    let c = ctx(&[], false);
    let (code, out, err) = exec(&c, &["printer", "show", "abc"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("printcam: error: "), "{err}");
}

#[test]
fn rotation_and_flip_are_set_shown_and_checked() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let (code, _, err) = exec(
        &c,
        &[
            "printer",
            "add",
            "--name",
            "side",
            "--camera-rotation",
            "90",
            "--camera-flip",
            "Horizontal",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let p = stored_printer(&dir, 1);
    assert_eq!(
        (p.camera_rotation, p.camera_flip),
        (Rotation::R90, Flip::Horizontal)
    );
    let (_, out, _) = exec(&c, &["printer", "show", "1"]);
    assert!(
        out.contains("camera rotation: 90 (degrees clockwise)\n"),
        "{out}"
    );
    assert!(out.contains("camera flip:     horizontal\n"), "{out}");
    for (flag, bad) in [
        ("--camera-rotation", "45"),
        ("--camera-rotation", "ninety"),
        ("--camera-flip", "diagonal"),
    ] {
        let (code, out, err) = exec(&c, &["printer", "set", "1", flag, bad]);
        assert_eq!((code, out.as_str()), (2, ""), "{flag} {bad}");
        assert!(err.contains(flag) && err.contains(bad), "{err}");
    }
    let (code, _, err) = exec(
        &c,
        &[
            "printer",
            "set",
            "1",
            "--camera-rotation",
            "270",
            "--camera-flip",
            "",
        ],
    );
    assert_eq!(code, 0, "{err}");
    let p = stored_printer(&dir, 1);
    assert_eq!(
        (p.camera_rotation, p.camera_flip),
        (Rotation::R270, Flip::None)
    );
    assert_eq!(
        patch_of(&["printer", "set", "1", "--camera-rotation", ""]).camera_rotation,
        Some(Rotation::R0)
    );
    let (_, out, _) = exec(&c, &["printer", "show", "1"]);
    assert!(out.contains("camera flip:     none\n"), "{out}");
}

#[test]
fn rtsp_client_is_set_shown_checked_and_warned_about_where_it_does_nothing() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    let x1c = [
        "printer",
        "add",
        "--name",
        "x1c",
        "--ip",
        "10.0.0.5",
        "--access-code",
        "12345678",
        "--model",
        "X1C",
        "--rtsp-client",
        "native",
    ];
    assert_eq!(exec(&c, &x1c), (0, "1\n".to_string(), String::new()));
    assert_eq!(stored_printer(&dir, 1).rtsp_client, RtspClient::Native);
    let (_, out, _) = exec(&c, &["printer", "show", "1"]);
    assert!(
        out.contains("rtsp client:     native (no fallback to ffmpeg)\n"),
        "{out}"
    );
    let (code, out, err) = exec(&c, &["printer", "set", "1", "--rtsp-client", "gstreamer"]);
    assert_eq!((code, out.as_str()), (2, ""), "{err}");
    assert!(
        err.contains("--rtsp-client must be auto, native or ffmpeg, not \"gstreamer\""),
        "{err}"
    );
    assert_eq!(stored_printer(&dir, 1).rtsp_client, RtspClient::Native);
    let (code, _, err) = exec(&c, &["printer", "set", "1", "--rtsp-client", "FFmpeg"]);
    assert_eq!((code, err.as_str()), (0, ""));
    assert_eq!(stored_printer(&dir, 1).rtsp_client, RtspClient::Ffmpeg);
    // Empty is the default again.
    assert_eq!(exec(&c, &["printer", "set", "1", "--rtsp-client", ""]).0, 0);
    assert_eq!(stored_printer(&dir, 1).rtsp_client, RtspClient::Auto);
    let (_, out, _) = exec(&c, &["printer", "show", "1"]);
    assert!(
        out.contains("rtsp client:     auto (native, ffmpeg for streams it cannot read)\n"),
        "{out}"
    );
    assert_eq!(
        patch_of(&["printer", "set", "1", "--name", "b"]).rtsp_client,
        None
    );

    // On a camera no RTSP client reads: stored, with a warning.
    let p1s = [
        "printer",
        "add",
        "--name",
        "p1s",
        "--ip",
        "10.0.0.6",
        "--access-code",
        "12345678",
        "--model",
        "P1S",
        "--rtsp-client",
        "ffmpeg",
    ];
    let (code, out, err) = exec(&c, &p1s);
    assert_eq!((code, out.as_str()), (0, "2\n"), "{err}");
    assert_eq!(
        err,
        "printcam: warning: rtsp_client ffmpeg has no effect on the chamber camera of P1 and \
         A1 printers: only rtsp:// and rtsps:// cameras (and the RTSPS camera of X1, H2 and \
         P2 printers) are read by an RTSP client\n"
    );
    assert_eq!(stored_printer(&dir, 2).rtsp_client, RtspClient::Ffmpeg);
    let (_, out, _) = exec(&c, &["printer", "show", "2"]);
    assert!(
        out.contains("rtsp client:     ffmpeg (no effect: the camera is not RTSP)\n"),
        "{out}"
    );
    let set_camera = |url: &str, kind: &str| {
        let line = [
            "printer",
            "set",
            "2",
            "--camera-url",
            url,
            "--camera-type",
            kind,
        ];
        let (code, _, err) = exec(&c, &line);
        assert_eq!(code, 0, "{err}");
        err
    };
    let err = set_camera("http://10.0.0.9/stream", "mjpeg");
    assert!(
        err.contains("rtsp_client ffmpeg has no effect on an external mjpeg camera"),
        "{err}"
    );
    // The same camera over RTSP: no warning.
    assert_eq!(set_camera("rtsp://10.0.0.9/stream", "rtsp"), "");
}

/// `printer add` of a printer called `a` at `ip`.
fn add_line<'a>(ip: &'a str, code: &'a str) -> [&'a str; 8] {
    [
        "printer",
        "add",
        "--name",
        "a",
        "--ip",
        ip,
        "--access-code",
        code,
    ]
}

fn stored_printer(dir: &TestDir, id: i64) -> Printer {
    Registry::open(Path::new(&dir.db()))
        .unwrap()
        .get(id)
        .unwrap()
        .unwrap()
}

#[test]
fn a_host_that_does_not_resolve_is_added_with_a_warning() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    // RFC 6761: .invalid never resolves.
    let (code, out, err) = exec(
        &c,
        &[
            "printer",
            "add",
            "--name",
            "door",
            "--camera-type",
            "mjpeg",
            "--camera-url",
            "http://admin:s3cretpw@cam.invalid:8081/?action=stream",
        ],
    );
    assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");
    assert!(err.starts_with("printcam: warning: "), "{err}");
    assert!(
        err.contains("cam.invalid") && !err.contains("s3cretpw"),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
    // A name that resolves to loopback is refused (no --allow-loopback).
    let (code, _, err) = exec(&c, &add_line("localhost", "x1x1x1x1"));
    assert_eq!(code, 2, "{err}");
    assert!(
        err.contains("loopback") && err.contains("--allow-loopback"),
        "{err}"
    );
}

#[test]
fn moving_a_printer_asks_for_its_access_code() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    assert_eq!(exec(&c, &add_line("10.0.0.5", "x1x1x1x1")).0, 0);
    let (code, _, err) = exec(&c, &["printer", "set", "1", "--ip", "10.0.0.6"]);
    assert_eq!(code, 0, "{err}");
    assert!(err.contains("access code is needed again"), "{err}");
    let p = stored_printer(&dir, 1);
    assert_eq!(p.ip.as_deref(), Some("10.0.0.6"));
    assert_eq!(p.access_code.as_deref(), Some(STDIN_CODE));
    // No answer: nothing changes.
    let silent = Context {
        read_line: Box::new(|| Ok(String::new())),
        ..ctx(&[("PRINTCAM_DB", dir.db())], false)
    };
    let (code, _, err) = exec(&silent, &["printer", "set", "1", "--camera-port", "6001"]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(stored_printer(&dir, 1).camera_port, None);
    // Given in the same change, or not moving: no question.
    let line = [
        "printer",
        "set",
        "1",
        "--camera-port",
        "6001",
        "--access-code",
        "x2x2x2x2",
    ];
    assert_eq!(
        exec(&silent, &line),
        (0, "printer 1 updated\n".to_string(), String::new())
    );
    assert_eq!(
        stored_printer(&dir, 1).access_code.as_deref(),
        Some("x2x2x2x2")
    );
    let line = [
        "printer",
        "set",
        "1",
        "--name",
        "b",
        "--camera-port",
        "6001",
    ];
    assert_eq!(
        exec(&silent, &line),
        (0, "printer 1 updated\n".to_string(), String::new())
    );
}

#[test]
fn list_and_show_mask_secret_query_values_and_user_names() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    for url in [
        "http://10.0.0.9/video.cgi?user=admin&pwd=Hunter2pw",
        "http://APIKEY123456@10.0.0.9/stream",
    ] {
        let line = [
            "printer",
            "add",
            "--name",
            "c",
            "--camera-type",
            "mjpeg",
            "--camera-url",
            url,
        ];
        assert_eq!(exec(&c, &line).0, 0);
    }
    for line in [
        &["printer", "list"][..],
        &["printer", "list", "--json"],
        &["printer", "show", "1"],
        &["printer", "show", "2"],
    ] {
        let (code, out, err) = exec(&c, line);
        assert_eq!(code, 0, "{err}");
        assert!(
            !out.contains("Hunter2pw") && !out.contains("APIKEY123456"),
            "{out}"
        );
    }
}

#[test]
fn set_and_remove() {
    let dir = TestDir::new();
    let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
    exec(
        &c,
        &[
            "printer",
            "add",
            "--name",
            "a",
            "--ip",
            "10.0.0.5",
            "--access-code",
            "x1x1x1x1",
        ],
    );
    assert_eq!(exec(&c, &["printer", "set", "1", "--name", "renamed"]).0, 0);
    let (_, show, _) = exec(&c, &["printer", "show", "1"]);
    assert!(
        show.contains("renamed") && show.contains("10.0.0.5"),
        "{show}"
    );
    assert_eq!(exec(&c, &["printer", "forget-cert", "1"]).0, 0);
    assert_eq!(exec(&c, &["printer", "remove", "1"]).0, 0);
    assert_eq!(exec(&c, &["printer", "show", "1"]).0, 1);
}

#[test]
fn snapshot_refuses_a_terminal_before_connecting() {
    let c = ctx(&[("PRINTCAM_DB", "/nonexistent/p.db".into())], true);
    let (code, out, err) = exec(&c, &["snapshot", "1"]);
    assert_eq!((code, out.as_str()), (2, ""));
    assert!(err.contains("terminal"), "{err}");
}

#[test]
fn atomic_write_leaves_only_the_file() {
    let dir = TestDir::new();
    let path = dir.0.join("a.jpg");
    write_atomically(&path, b"one").unwrap();
    write_atomically(&path, b"two").unwrap();
    assert_eq!(fs::read(&path).unwrap(), b"two");
    assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
    assert!(write_atomically(&dir.0.join("no/such/dir.jpg"), b"x").is_err());
}

#[test]
fn test_lines() {
    let ok = TestResult {
        success: true,
        resolution: Some("1280x720".into()),
        error: None,
        camera: "chamber",
        detected: false,
    };
    assert_eq!(test_line(&ok), "ok: 1280x720\n");
    let failed = TestResult {
        success: false,
        resolution: None,
        error: Some("no\nframe".into()),
        camera: "undetected",
        detected: false,
    };
    assert_eq!(test_line(&failed), "failed: no frame\n");
}
