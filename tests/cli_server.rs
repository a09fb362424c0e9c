//! `printcam snapshot` and `printcam test` while `printcam serve` runs on the
//! same database: they go through the server (found through `<db>.server`),
//! so the printer sees one connection, counted by the port-6000 double. Also:
//! the file's mode and removal, a stale file, and a server with a token.

mod support;

#[path = "support/chamber_double.rs"]
mod chamber_double;
#[path = "support/served.rs"]
mod served;

use chamber_double::{Double, Mode, Options, Stats};
use served::Served;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::atomic::{AtomicUsize, Ordering};
use support::{is_jpeg, MjpegReader};

const CODE: &str = "12345678";
const TOKEN: &str = "cli-through-server-token-0123";

struct TestDir(PathBuf);

impl TestDir {
    fn new() -> TestDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let n = N.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("printcam-clisrv-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TestDir(dir)
    }

    fn db(&self) -> String {
        self.0.join("printers.db").display().to_string()
    }

    fn server_file(&self) -> PathBuf {
        self.0.join("printers.db.server")
    }
}

impl Drop for TestDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The binary, in `dir`, with a clean environment, on the test's database.
fn printcam(dir: &TestDir, args: &[&str]) -> Output {
    let db = dir.db();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_printcam"));
    for var in ["PRINTCAM_DB", "PRINTCAM_TOKEN", "PRINTCAM_ALLOW_LOOPBACK"] {
        cmd.env_remove(var);
    }
    cmd.args(args)
        .args(["--db", &db, "--allow-loopback"])
        .current_dir(&dir.0)
        .output()
        .unwrap()
}

fn ok(o: &Output) -> String {
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(o.status.success(), "exit {:?}: {err}", o.status);
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn add_p1s(dir: &TestDir, port: u16) -> String {
    let port = port.to_string();
    let o = printcam(
        dir,
        &[
            "printer",
            "add",
            "--name",
            "P1S",
            "--ip",
            "127.0.0.1",
            "--model",
            "P1S",
            "--access-code",
            CODE,
            "--camera-port",
            &port,
        ],
    );
    ok(&o).trim().to_string()
}

fn serve(dir: &TestDir, token: Option<&str>) -> Served {
    let db = dir.db();
    let envs: Vec<(&str, &str)> = token.map(|t| ("PRINTCAM_TOKEN", t)).into_iter().collect();
    Served::start(&["--db", &db, "--allow-loopback", "--grace", "1"], &envs)
}

fn snapshot(dir: &TestDir, id: &str) -> Vec<u8> {
    let out = dir.0.join("snap.jpg");
    let _ = std::fs::remove_file(&out);
    ok(&printcam(
        dir,
        &["snapshot", id, "-o", &out.display().to_string()],
    ));
    std::fs::read(&out).unwrap()
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn snapshot_and_test_share_the_running_servers_connection() {
    let dir = TestDir::new();
    let double = Double::start(Options::new(Mode::Endless));
    let id = add_p1s(&dir, double.port());
    let server = serve(&dir, Some(TOKEN));
    let file = dir.server_file();
    assert_eq!(mode(&file), 0o600);
    let text = std::fs::read_to_string(&file).unwrap();
    assert!(
        text.contains(&format!("pid={}\n", server.child.id())),
        "{text}"
    );
    assert!(text.contains(&format!("addr={}\n", server.addr)), "{text}");

    // A viewer keeps the server's camera connection open.
    let mut viewer = MjpegReader::open(
        server.addr,
        &format!("/printers/{id}/camera/stream?token={TOKEN}"),
    );
    assert_eq!(viewer.status, 200);
    assert!(is_jpeg(&viewer.next_part().unwrap()));
    assert_eq!(Stats::get(&double.stats.connections), 1);

    assert!(is_jpeg(&snapshot(&dir, &id)));
    let line = ok(&printcam(&dir, &["test", &id]));
    assert!(line.starts_with("ok: "), "{line}");
    assert!(is_jpeg(&viewer.next_part().unwrap()));
    // The viewer, the snapshot and the test: one printer connection.
    assert_eq!(Stats::get(&double.stats.connections), 1);
    assert_eq!(Stats::get(&double.stats.max_concurrent), 1);

    // An unknown printer is the server's 404, said as such.
    let o = printcam(&dir, &["test", "999"]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("Printer not found"), "{err}");

    drop(viewer);
    server.stop();
    assert!(!file.exists(), "the server file outlived the server");
    // No server now: the CLI connects itself.
    assert!(is_jpeg(&snapshot(&dir, &id)));
    assert_eq!(Stats::get(&double.stats.connections), 2);
}

#[test]
fn a_file_left_by_a_dead_server_is_ignored() {
    let dir = TestDir::new();
    let double = Double::start(Options::new(Mode::Endless));
    let id = add_p1s(&dir, double.port());
    // A pid that was just reaped: nobody has it.
    let mut gone = Command::new("true").spawn().unwrap();
    let pid = gone.id();
    gone.wait().unwrap();
    std::fs::write(dir.server_file(), format!("pid={pid}\naddr=127.0.0.1:9\n")).unwrap();
    assert!(is_jpeg(&snapshot(&dir, &id)));
    assert_eq!(Stats::get(&double.stats.auth_ok), 1);

    // One that others may write is not trusted, even with a live pid.
    let me = std::process::id();
    std::fs::write(dir.server_file(), format!("pid={me}\naddr=127.0.0.1:9\n")).unwrap();
    std::fs::set_permissions(dir.server_file(), std::fs::Permissions::from_mode(0o666)).unwrap();
    let o = printcam(&dir, &["snapshot", &id, "-o", "x.jpg"]);
    ok(&o);
    assert!(!String::from_utf8_lossy(&o.stderr).contains("warning"));
    assert_eq!(Stats::get(&double.stats.auth_ok), 2);
}

#[test]
fn a_file_whose_server_does_not_listen_is_passed_over_with_a_warning() {
    let dir = TestDir::new();
    let double = Double::start(Options::new(Mode::Endless));
    let id = add_p1s(&dir, double.port());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // A live pid (this test's) with nothing listening where the file says.
    let me = std::process::id();
    std::fs::write(
        dir.server_file(),
        format!("pid={me}\naddr=127.0.0.1:{port}\n"),
    )
    .unwrap();
    let out = dir.0.join("snap.jpg").display().to_string();
    let o = printcam(&dir, &["snapshot", &id, "-o", &out]);
    ok(&o);
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("does not listen") && err.contains("directly"),
        "{err}"
    );
    assert_eq!(Stats::get(&double.stats.auth_ok), 1);
}

#[test]
fn help_says_when_the_server_is_used() {
    let dir = TestDir::new();
    for cmd in ["snapshot", "test"] {
        let help = ok(&printcam(&dir, &[cmd, "--help"]));
        assert!(help.contains("printcam serve"), "{help}");
        assert!(help.contains("DB.server"), "{help}");
    }
}
