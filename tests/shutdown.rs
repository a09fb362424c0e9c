//! The real binary with a live ffmpeg child: SIGTERM ends it cleanly within
//! 3 s and leaves no child behind, and so do SIGHUP and SIGQUIT; and a whole session at RUST_LOG=trace
//! (printers added, a stream, a snapshot, tests that fail, an ffmpeg that
//! fails repeating its URL) logs no access code and no URL password.

mod support;

#[path = "fake-ffmpeg/support.rs"]
mod doubles;
#[path = "support/served.rs"]
mod served;

use doubles::{children_of, manifest};
use served::Served;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use support::{is_jpeg, request, MjpegReader};

const CODE: &str = "ACC0DE77";
const PASSWORD: &str = "PASSW0RDX";

/// A temporary folder with a fake ffmpeg that streams JPEGs (jpegs.sh),
/// except for URLs containing "fail", where it fails as refused.sh does,
/// repeating the URL with its password on stderr.
struct Workdir(PathBuf);

impl Workdir {
    fn new(tag: &str) -> Workdir {
        let dir =
            std::env::temp_dir().join(format!("printcam-shutdown-{}-{tag}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let script = format!(
            "#!/bin/sh\ncase \"$*\" in *fail*) exec '{}' \"$@\";; esac\nexec '{}' \"$@\"\n",
            manifest("tests/fake-ffmpeg/refused.sh").display(),
            manifest("tests/fake-ffmpeg/jpegs.sh").display()
        );
        let ffmpeg = dir.join("ffmpeg");
        std::fs::write(&ffmpeg, script).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ffmpeg, std::fs::Permissions::from_mode(0o755)).unwrap();
        Workdir(dir)
    }

    fn path(&self, name: &str) -> String {
        self.0.join(name).to_string_lossy().into_owned()
    }

    /// printcam serving this folder's database with its fake ffmpeg.
    fn serve(&self, envs: &[(&str, &str)]) -> Served {
        Served::start(
            &[
                "--db",
                &self.path("printcam.db"),
                "--allow-loopback",
                "--ffmpeg",
                &self.path("ffmpeg"),
            ],
            envs,
        )
    }
}

impl Drop for Workdir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn post(addr: std::net::SocketAddr, body: &str) -> i64 {
    let r = request(
        addr,
        "POST",
        "/printers",
        &[("Content-Type", "application/json")],
        Some(body.as_bytes()),
    );
    assert_eq!(r.status, 201, "{}", r.text());
    r.json().get("id").and_then(|v| v.as_i64()).unwrap()
}

#[test]
fn sigterm_with_viewers_and_ffmpeg_exits_cleanly_and_logs_no_secret() {
    // The fake ffmpeg stands for ffmpeg's RTSP client here (its URL says
    // how it behaves), so the cameras are set to that client.
    let work = Workdir::new("sigterm");
    let served = work.serve(&[("RUST_LOG", "trace")]);
    let addr = served.addr;
    let cam = post(
        addr,
        &format!(
            r#"{{"name":"garage","camera_type":"rtsp","rtsp_client":"ffmpeg","camera_url":"rtsp://cam:{PASSWORD}@127.0.0.1:8554/live"}}"#
        ),
    );
    let broken = post(
        addr,
        &format!(
            r#"{{"name":"broken","camera_type":"rtsp","rtsp_client":"ffmpeg","camera_url":"rtsp://cam:{PASSWORD}@127.0.0.1:8554/fail"}}"#
        ),
    );
    // A P1S whose camera port is closed: the failure path of the chamber source.
    let printer = post(
        addr,
        &format!(
            r#"{{"name":"p1s","ip":"127.0.0.1","access_code":"{CODE}","model":"P1S","camera_port":1}}"#
        ),
    );
    for id in [broken, printer] {
        let t = request(
            addr,
            "GET",
            &format!("/printers/{id}/camera/test"),
            &[],
            None,
        );
        assert_eq!(
            t.json().get("success").and_then(|v| v.as_bool()),
            Some(false),
            "{}",
            t.text()
        );
        assert!(
            !t.text().contains(PASSWORD) && !t.text().contains(CODE),
            "{}",
            t.text()
        );
    }

    let mut viewers: Vec<MjpegReader> = (0..2)
        .map(|_| MjpegReader::open(addr, &format!("/printers/{cam}/camera/stream?fps=10")))
        .collect();
    for v in viewers.iter_mut() {
        assert!(is_jpeg(&v.next_part().unwrap()));
    }
    let snap = request(
        addr,
        "GET",
        &format!("/printers/{cam}/camera/snapshot"),
        &[],
        None,
    );
    assert_eq!(snap.status, 200);
    let listed = request(addr, "GET", "/printers", &[], None).text();
    assert!(
        !listed.contains(PASSWORD) && !listed.contains(CODE),
        "{listed}"
    );

    let server_pid = served.child.id();
    let ffmpegs = children_of(server_pid);
    assert!(!ffmpegs.is_empty(), "no ffmpeg child while streaming");
    let started = Instant::now();
    let log = served.stop();
    let took = started.elapsed();
    assert!(took < Duration::from_secs(3), "shutdown took {took:?}");
    for pid in ffmpegs {
        assert!(
            !Path::new(&format!("/proc/{pid}")).exists(),
            "ffmpeg {pid} outlived printcam"
        );
    }
    for v in viewers.iter_mut() {
        // Their streams ended with the server.
        let _ = v.read_to_end();
    }
    assert!(log.contains("SIGTERM"), "{log}");
    assert!(
        log.contains("Connection refused"),
        "the ffmpeg failure was not logged:\n{log}"
    );
    assert!(!log.contains(PASSWORD), "a URL password was logged:\n{log}");
    assert!(!log.contains(CODE), "an access code was logged:\n{log}");
}

/// SIGHUP and SIGQUIT used to kill printcam at once (their default action),
/// leaving its ffmpeg children to be reparented; they stop it as SIGTERM does.
#[test]
fn sighup_and_sigquit_stop_as_orderly_as_sigterm() {
    for (signal, name) in [(libc::SIGHUP, "SIGHUP"), (libc::SIGQUIT, "SIGQUIT")] {
        let work = Workdir::new(name);
        let served = work.serve(&[]);
        let cam = post(
            served.addr,
            r#"{"name":"garage","camera_type":"rtsp","camera_url":"rtsp://127.0.0.1:8554/live"}"#,
        );
        let mut viewer = MjpegReader::open(
            served.addr,
            &format!("/printers/{cam}/camera/stream?fps=10"),
        );
        assert!(is_jpeg(&viewer.next_part().unwrap()));
        let ffmpegs = children_of(served.child.id());
        assert!(!ffmpegs.is_empty(), "no ffmpeg child while streaming");
        // stop_with asserts a clean exit (status 0, not death by the signal).
        let log = served.stop_with(signal);
        assert!(
            log.contains(&format!("{name}: shutting down")),
            "{name}:\n{log}"
        );
        for pid in ffmpegs {
            assert!(
                !Path::new(&format!("/proc/{pid}")).exists(),
                "ffmpeg {pid} outlived printcam after {name}"
            );
        }
        let _ = viewer.read_to_end();
    }
}
