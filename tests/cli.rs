//! The real `printcam` binary: exit codes, what goes to stdout and stderr,
//! and that no access code is ever printed.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};

const SECRET: &str = "SECRETAC";

struct TestDir(PathBuf);

impl TestDir {
    fn new() -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("printcam-cli-it-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn db(&self) -> String {
        self.0.join("printers.db").display().to_string()
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary with a clean `PRINTCAM_*` environment, run in `cwd` so a
/// stray default `printcam.db` could never land in the source tree.
fn printcam_in(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printcam"));
    for var in [
        "PRINTCAM_DB",
        "PRINTCAM_LISTEN",
        "PRINTCAM_ALLOW_LOOPBACK",
        "PRINTCAM_FFMPEG",
        "PRINTCAM_GRACE",
        "RUST_LOG",
    ] {
        cmd.env_remove(var);
    }
    cmd.envs(env.iter().copied()).args(args).current_dir(cwd);
    cmd.output().unwrap()
}

struct Run {
    code: i32,
    out: String,
    err: String,
}

fn run(dir: &TestDir, args: &[&str]) -> Run {
    let o = printcam_in(&dir.0, args, &[]);
    Run {
        code: o.status.code().expect("printcam was killed by a signal"),
        out: String::from_utf8_lossy(&o.stdout).into_owned(),
        err: String::from_utf8_lossy(&o.stderr).into_owned(),
    }
}

/// `args` followed by `--db` of the test's database.
fn with_db(dir: &TestDir, args: &[&str]) -> Run {
    let db = dir.db();
    run(dir, &[args, &["--db", &db]].concat())
}

fn assert_one_error_line(r: &Run, code: i32, wanted: &str) {
    assert_eq!(r.code, code, "stderr: {}", r.err);
    assert!(r.err.starts_with("printcam: error: "), "{}", r.err);
    assert_eq!(r.err.lines().count(), 1, "{}", r.err);
    assert!(r.err.contains(wanted), "wanted {wanted:?} in {}", r.err);
}

fn add_bambu(dir: &TestDir) -> String {
    let r = with_db(
        dir,
        &[
            "printer",
            "add",
            "--name",
            "Workshop P1S",
            "--ip",
            "192.168.1.50",
            "--access-code",
            SECRET,
            "--model=P1S",
            "--serial",
            "01S00C123456789",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
    r.out.trim_end().to_string()
}

#[test]
fn add_list_show_set_remove_round_trip() {
    let dir = TestDir::new();
    let id = add_bambu(&dir);
    assert_eq!(id, "1", "add prints the id alone");

    let list = with_db(&dir, &["printer", "list"]);
    assert_eq!(list.code, 0, "{}", list.err);
    assert!(list.out.contains("Workshop P1S"), "{}", list.out);
    assert!(list.out.contains("chamber"), "{}", list.out);
    assert!(list.out.contains("192.168.1.50"), "{}", list.out);

    let set = with_db(
        &dir,
        &["printer", "set", &id, "--name", "Renamed", "--model", "X1C"],
    );
    assert_eq!(
        (set.code, set.out.as_str()),
        (0, format!("printer {id} updated\n").as_str()),
        "{}",
        set.err
    );
    let show = with_db(&dir, &["printer", "show", &id]);
    assert_eq!(show.code, 0, "{}", show.err);
    assert!(show.out.contains("Renamed"), "{}", show.out);
    assert!(
        show.out.contains("rtsps"),
        "X1C has an RTSPS camera: {}",
        show.out
    );

    let rm = with_db(&dir, &["printer", "remove", &id]);
    assert_eq!(rm.code, 0, "{}", rm.err);
    let gone = with_db(&dir, &["printer", "show", &id]);
    assert_one_error_line(&gone, 1, "Printer not found");
}

#[test]
fn list_and_show_never_print_the_access_code() {
    let dir = TestDir::new();
    let id = add_bambu(&dir);
    let camera = with_db(
        &dir,
        &[
            "printer",
            "add",
            "--name",
            "Door",
            "--camera-url",
            "http://admin:CAMPASSWORD@192.168.1.60/video",
            "--camera-type",
            "mjpeg",
        ],
    );
    assert_eq!(camera.code, 0, "{}", camera.err);
    for args in [
        &["printer", "list"][..],
        &["printer", "list", "--json"],
        &["printer", "show", &id],
        &["printer", "show", camera.out.trim()],
    ] {
        let r = with_db(&dir, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
        for secret in [SECRET, "CAMPASSWORD"] {
            assert!(
                !r.out.contains(secret),
                "{args:?} printed {secret}: {}",
                r.out
            );
            assert!(
                !r.err.contains(secret),
                "{args:?} printed {secret}: {}",
                r.err
            );
        }
    }
    let show = with_db(&dir, &["printer", "show", &id]);
    assert!(show.out.contains("access code:"), "{}", show.out);
    assert!(show.out.contains(" set"), "{}", show.out);
    let json = with_db(&dir, &["printer", "list", "--json"]);
    assert!(json.out.trim_start().starts_with('['), "{}", json.out);
    assert!(
        json.out.contains("\"has_access_code\":true"),
        "{}",
        json.out
    );
    assert!(json.out.contains("admin:****@192.168.1.60"), "{}", json.out);
}

#[test]
fn refused_camera_urls_exit_non_zero_with_a_reason() {
    let dir = TestDir::new();
    for (url, kind, why) in [
        ("http://169.254.169.254/", "mjpeg", "metadata"),
        ("file:///etc/passwd", "snapshot", "file"),
        ("http://127.0.0.1:8080/", "mjpeg", "refused"),
    ] {
        let r = with_db(
            &dir,
            &[
                "printer",
                "add",
                "--name",
                "x",
                "--camera-url",
                url,
                "--camera-type",
                kind,
            ],
        );
        // Refused input is a usage error (2), like a missing flag.
        assert_one_error_line(&r, 2, why);
        assert!(r.out.is_empty(), "{}", r.out);
    }
    // Nothing was stored.
    let list = with_db(&dir, &["printer", "list", "--json"]);
    assert_eq!(list.out, "[]\n");
}

#[test]
fn allow_loopback_admits_a_camera_on_this_box() {
    let dir = TestDir::new();
    let r = with_db(
        &dir,
        &[
            "--allow-loopback",
            "printer",
            "add",
            "--name",
            "local",
            "--camera-url",
            "http://127.0.0.1:8081/stream",
            "--camera-type",
            "mjpeg",
        ],
    );
    assert_eq!(r.code, 0, "{}", r.err);
}

#[test]
fn set_with_a_refused_url_keeps_the_old_settings() {
    let dir = TestDir::new();
    let id = add_bambu(&dir);
    let r = with_db(
        &dir,
        &[
            "printer",
            "set",
            &id,
            "--camera-url",
            "http://[::1]/",
            "--camera-type",
            "mjpeg",
        ],
    );
    assert_one_error_line(&r, 2, "--allow-loopback");
    let show = with_db(&dir, &["printer", "show", &id]);
    assert!(show.out.contains("chamber"), "{}", show.out);
}

#[test]
fn unknown_printers_are_reported() {
    let dir = TestDir::new();
    add_bambu(&dir);
    for args in [
        &["printer", "show", "42"][..],
        &["printer", "set", "42", "--name", "x"],
        &["printer", "remove", "42"],
        &["printer", "forget-cert", "42"],
        &["test", "42"],
        &["snapshot", "42", "-o", "never.jpg"],
    ] {
        let r = with_db(&dir, args);
        assert_one_error_line(&r, 1, "Printer not found");
    }
    assert!(!dir.0.join("never.jpg").exists());
}

#[test]
fn test_of_a_printer_without_camera_fails_readably() {
    let dir = TestDir::new();
    let id = with_db(&dir, &["printer", "add", "--name", "no camera"]);
    assert_eq!(id.code, 0, "{}", id.err);
    let r = with_db(&dir, &["test", id.out.trim()]);
    assert_eq!(r.code, 1, "{}", r.err);
    assert!(r.out.starts_with("failed: "), "{}", r.out);
    assert!(r.out.contains("no camera"), "{}", r.out);
}

#[test]
fn snapshot_failure_writes_nothing() {
    let dir = TestDir::new();
    let id = with_db(&dir, &["printer", "add", "--name", "no camera"]);
    let id = id.out.trim();
    // stdout is a pipe here, so writing to it is allowed; nothing may appear.
    let r = with_db(&dir, &["snapshot", id]);
    assert_one_error_line(&r, 1, "no camera");
    assert!(r.out.is_empty());
    let r = with_db(&dir, &["snapshot", id, "-o", "shot.jpg"]);
    assert_eq!(r.code, 1, "{}", r.err);
    let left: Vec<_> = std::fs::read_dir(&dir.0)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.contains("shot"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn the_environment_names_the_database_and_the_flag_wins() {
    let (env_dir, flag_dir) = (TestDir::new(), TestDir::new());
    let env_db = env_dir.db();
    let env = [("PRINTCAM_DB", env_db.as_str())];
    let o = printcam_in(&env_dir.0, &["printer", "add", "--name", "from env"], &env);
    assert!(o.status.success());
    assert!(Path::new(&env_db).exists());
    let flag_db = flag_dir.db();
    let o = printcam_in(&env_dir.0, &["printer", "list", "--db", &flag_db], &env);
    assert_eq!(
        o.status.code(),
        Some(1),
        "the flag's database does not exist"
    );
    let o = printcam_in(&env_dir.0, &["printer", "list"], &env);
    assert!(String::from_utf8_lossy(&o.stdout).contains("from env"));
}

#[test]
fn the_rtsp_client_is_stored_listed_and_documented() {
    let dir = TestDir::new();
    let add = [
        "printer",
        "add",
        "--name",
        "door",
        "--camera-url",
        "rtsp://10.0.0.9:8554/stream",
        "--camera-type",
        "rtsp",
        "--rtsp-client",
        "ffmpeg",
    ];
    let r = with_db(&dir, &add);
    assert_eq!((r.code, r.out.as_str(), r.err.as_str()), (0, "1\n", ""));
    let r = with_db(&dir, &["printer", "list", "--json"]);
    assert!(r.out.contains("\"rtsp_client\":\"ffmpeg\""), "{}", r.out);
    let r = with_db(&dir, &["printer", "set", "1", "--rtsp-client", "hls"]);
    assert_one_error_line(&r, 2, "--rtsp-client must be auto, native or ffmpeg");
    let r = with_db(&dir, &["printer", "show", "1"]);
    assert!(
        r.out
            .contains("rtsp client:     ffmpeg (for MJPEG and snapshots)\n"),
        "{}",
        r.out
    );
    for command in ["add", "set"] {
        let r = run(&dir, &["printer", command, "--help"]);
        assert!(
            r.out.contains("--rtsp-client CLIENT"),
            "{command}: {}",
            r.out
        );
    }
}

#[test]
fn every_command_has_help() {
    let dir = TestDir::new();
    for args in [
        &["--help"][..],
        &["-h"],
        &["help"],
        &["help", "printer", "add"],
        &["serve", "--help"],
        &["printer", "--help"],
        &["printer", "add", "--help"],
        &["printer", "list", "-h"],
        &["printer", "show", "--help"],
        &["printer", "set", "--help"],
        &["printer", "remove", "--help"],
        &["printer", "forget-cert", "--help"],
        &["snapshot", "--help"],
        &["test", "--help"],
    ] {
        let r = run(&dir, args);
        assert_eq!(r.code, 0, "{args:?}: {}", r.err);
        assert!(r.out.contains("Usage: printcam"), "{args:?}: {}", r.out);
        assert!(r.out.contains("Example"), "{args:?}: {}", r.out);
        assert!(r.err.is_empty(), "{args:?}: {}", r.err);
    }
}

#[test]
fn no_arguments_prints_the_overview_to_stderr() {
    let dir = TestDir::new();
    let r = run(&dir, &[]);
    assert_eq!(r.code, 2);
    assert!(r.out.is_empty());
    assert!(r.err.contains("Usage: printcam"), "{}", r.err);
    let r = run(&dir, &["printer"]);
    assert_eq!(r.code, 2);
    assert!(r.err.contains("printer SUBCOMMAND"), "{}", r.err);
}

#[test]
fn version() {
    let dir = TestDir::new();
    for flag in ["--version", "-V"] {
        let r = run(&dir, &[flag]);
        assert_eq!(r.code, 0);
        assert_eq!(r.out, format!("printcam {}\n", env!("CARGO_PKG_VERSION")));
    }
}

#[test]
fn bad_usage_exits_2_with_one_line() {
    let dir = TestDir::new();
    for (args, why) in [
        (&["frobnicate"][..], "unknown command"),
        (&["printer", "add", "--name", "x", "--bogus"], "--bogus"),
        (&["printer", "add", "--name"], "needs a value"),
        (
            &["printer", "add", "--ip", "10.0.0.5"],
            "--name is required",
        ),
        (&["printer", "show", "abc"], "must be a number"),
        (&["printer", "show"], "missing printer ID"),
        (
            &["printer", "add", "--name", "x", "--camera-type", "webcam"],
            "unknown camera type",
        ),
        (
            &["printer", "add", "--name", "x", "--camera-port", "99999"],
            "--camera-port",
        ),
        (&["printer", "set", "1"], "nothing to change"),
        (&["serve", "--grace", "soon"], "--grace"),
        (&["serve", "--listen"], "needs a value"),
        (&["test", "1", "2"], "one printer ID"),
    ] {
        let r = run(&dir, args);
        assert_one_error_line(&r, 2, why);
        assert!(r.out.is_empty(), "{args:?}: {}", r.out);
    }
}

#[test]
fn a_mistyped_option_does_not_echo_its_value() {
    let dir = TestDir::new();
    let r = with_db(
        &dir,
        &[
            "printer",
            "add",
            "--name",
            "x",
            &format!("--acces-code={SECRET}"),
        ],
    );
    assert_one_error_line(&r, 2, "--acces-code");
    assert!(!r.err.contains(SECRET), "{}", r.err);
}

#[test]
fn bad_environment_is_reported_by_name() {
    let dir = TestDir::new();
    let db = dir.db();
    let o = printcam_in(
        &dir.0,
        &["printer", "add", "--name", "x", "--db", &db],
        &[("PRINTCAM_GRACE", "soon")],
    );
    assert_eq!(o.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&o.stderr).contains("PRINTCAM_GRACE"));
}

#[test]
fn the_access_code_can_come_from_stdin() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = TestDir::new();
    let db = dir.db();
    let mut child = Command::new(env!("CARGO_BIN_EXE_printcam"))
        .args(["printer", "add", "--name", "p", "--ip", "10.0.0.5"])
        .args(["--access-code", "-", "--db", &db])
        .env_remove("PRINTCAM_DB")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    writeln!(stdin, "{SECRET}").unwrap();
    drop(stdin);
    let o = child.wait_with_output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let show = with_db(&dir, &["printer", "show", "1"]);
    assert!(show.out.contains("access code:     set"), "{}", show.out);
    assert!(!show.out.contains(SECRET));
}

#[test]
fn usb_cameras_lists_devices_or_says_there_are_none() {
    let dir = TestDir::new();
    let r = run(&dir, &["usb-cameras"]);
    assert_eq!(r.code, 0, "{}", r.err);
    let has_video = std::fs::read_dir("/dev")
        .map(|d| {
            d.filter_map(|e| e.ok())
                .any(|e| e.file_name().to_string_lossy().starts_with("video"))
        })
        .unwrap_or(false);
    if has_video {
        assert!(r.out.contains("/dev/video"), "{}", r.out);
    } else {
        assert_eq!(r.out.trim(), "no /dev/video* devices");
    }
    assert_eq!(run(&dir, &["usb-cameras", "--help"]).code, 0);
    assert_eq!(run(&dir, &["usb-cameras", "extra"]).code, 2);
}

/// `--access-code -` on a terminal asks for the code and does not show it
/// as it is typed; from a pipe it reads silently. The terminal is a real
/// pseudo-terminal (Python's pty module).
#[test]
fn an_access_code_typed_at_a_terminal_is_asked_for_and_not_shown() {
    let dir = TestDir::new();
    let script = r#"
import os, pty, select, sys, time
argv = sys.argv[1:]
pid, fd = pty.fork()
if pid == 0:
    os.execv(argv[0], argv)
seen = b""
def read_for(seconds, until=None):
    global seen
    end = time.time() + seconds
    while time.time() < end:
        r, _, _ = select.select([fd], [], [], 0.1)
        if r:
            try:
                chunk = os.read(fd, 1024)
            except OSError:
                return
            if not chunk:
                return
            seen += chunk
            if until and until in seen:
                return
read_for(20, b"Access code")
os.write(fd, b"TYPEDC09\n")
read_for(20)
_, status = os.waitpid(pid, 0)
sys.stdout.write(repr(seen) + "\n" + str(os.waitstatus_to_exitcode(status)) + "\n")
"#;
    let db = dir.db();
    let out = Command::new("/usr/bin/python3")
        .args(["-c", script, env!("CARGO_BIN_EXE_printcam")])
        .args([
            "printer", "add", "--name", "tty", "--ip", "10.0.0.5", "--model", "P1S",
        ])
        .args(["--access-code", "-", "--db", &db])
        .current_dir(&dir.0)
        .output()
        .expect("python3 runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Access code"), "no prompt: {text}");
    assert!(!text.contains("TYPEDC09"), "the code was echoed: {text}");
    assert!(text.trim_end().ends_with("\n0"), "{text}");
    let show = with_db(&dir, &["printer", "show", "1"]);
    assert!(show.out.contains("access code:     set"), "{}", show.out);
    // From a pipe: no prompt at all.
    let piped = Command::new(env!("CARGO_BIN_EXE_printcam"))
        .args([
            "printer", "add", "--name", "pipe", "--ip", "10.0.0.6", "--model", "P1S",
        ])
        .args(["--access-code", "-", "--db", &db])
        .current_dir(&dir.0)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"PIPEDC08\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(
        piped.status.success(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
    assert!(
        piped.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&piped.stderr)
    );
}
