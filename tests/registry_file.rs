//! The real binary with a registry file it cannot write (a read-only file
//! system, another user's file): it says so at start, reads still work, and
//! a change is answered 503 saying why instead of a bare 500.

mod support;

#[path = "support/served.rs"]
mod served;

use printcam::registry::{Printer, Registry};
use served::Served;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::PathBuf;
use support::request;

/// A temporary folder, removed on drop.
struct Dir(PathBuf);

impl Drop for Dir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Nobody's uid and gid (Debian's 65534), for a user who may read but not
/// write a file of root's.
const NOBODY: u32 = 65534;

#[test]
fn a_read_only_registry_is_said_at_start_and_a_change_gets_503() {
    let dir = Dir(std::env::temp_dir().join(format!("printcam-readonly-{}", std::process::id())));
    let _ = std::fs::remove_dir_all(&dir.0);
    std::fs::create_dir_all(&dir.0).unwrap();
    std::fs::set_permissions(&dir.0, std::fs::Permissions::from_mode(0o755)).unwrap();
    let db = dir.0.join("printcam.db");
    let printer = Printer {
        name: "stored".into(),
        ..Printer::default()
    };
    Registry::open(&db).unwrap().add(&printer).unwrap();
    let db_arg = db.to_string_lossy().into_owned();
    let mut cmd = Served::command(&["--db", &db_arg], &[]);
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } == 0 {
        // Root writes any file, so the server runs as nobody, which may
        // read root's 0644 file but write neither it nor the folder.
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o644)).unwrap();
        cmd.uid(NOBODY).gid(NOBODY);
    } else {
        std::fs::set_permissions(&db, std::fs::Permissions::from_mode(0o400)).unwrap();
    }
    let served = Served::spawn(&mut cmd);
    let said = served.before_listening.join("\n");
    assert!(
        said.contains("is read-only") && said.contains("cannot be added, changed or removed"),
        "no read-only warning at start:\n{said}"
    );

    let list = request(served.addr, "GET", "/printers", &[], None);
    assert_eq!(list.status, 200, "{}", list.text());
    assert!(list.text().contains("stored"), "{}", list.text());
    let added = request(
        served.addr,
        "POST",
        "/printers",
        &[("Content-Type", "application/json")],
        Some(br#"{"name":"new","camera_type":"mjpeg","camera_url":"http://192.0.2.1/x"}"#),
    );
    assert_eq!(added.status, 503, "{}", added.text());
    assert!(added.text().contains("read-only"), "{}", added.text());
    served.stop();
}
