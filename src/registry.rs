//! The printer registry: one SQLite file.
//!
//! The file holds access codes, so it is created mode 0600 and tightened if
//! it was left looser. It uses a rollback journal (TRUNCATE) rather than WAL
//! because flash overlays (JFFS2) cannot mmap WAL's `-shm` file.

use crate::camera::{BuiltIn, CameraType};
use crate::error::{Error, Result};
use crate::orientation::{Flip, Orientation, Rotation};
use rusqlite::{params, Connection, OpenFlags, OptionalExtension, TransactionBehavior};
use std::fmt;
use std::fs::OpenOptions;
use std::io::ErrorKind;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

/// A registered printer and its camera settings.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Printer {
    pub id: i64,
    pub name: String,
    /// Bambu fields: the built-in camera is used when no external camera is enabled.
    pub ip: Option<String>,
    pub access_code: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    /// Replaces the built-in camera's default port (port forwarding, tests).
    pub camera_port: Option<u16>,
    /// External camera: served instead of the built-in one when enabled.
    pub camera_url: Option<String>,
    pub camera_type: Option<CameraType>,
    pub camera_enabled: bool,
    /// SHA-256 (lower-case hex) of the printer's TLS certificate, pinned on
    /// first successful connection.
    pub cert_sha256: Option<String>,
    /// The built-in camera found by trying both kinds, for a printer whose
    /// model printcam does not know (or that has none); forgotten when the
    /// address, port or model changes.
    pub detected_camera: Option<BuiltIn>,
    /// The pinned certificate was issued to the printer's serial by a
    /// Bambu CA (else it was pinned on first use).
    pub cert_verified: bool,
    /// How the picture is turned and mirrored for display (frames carry
    /// it as a tag; no pixel is changed).
    pub camera_rotation: Rotation,
    pub camera_flip: Flip,
    /// Which RTSP client reads an rtsp(s) camera (`RtspClient`).
    pub rtsp_client: crate::camera::RtspClient,
}

impl Printer {
    /// How the pinned certificate came to be trusted (README, Security).
    pub fn cert_trust(&self) -> Option<&'static str> {
        self.cert_sha256.as_ref()?;
        Some(if self.cert_verified {
            "verified by Bambu CA"
        } else {
            "pinned on first use"
        })
    }

    pub fn orientation(&self) -> Orientation {
        Orientation {
            rotation: self.camera_rotation,
            flip: self.camera_flip,
        }
    }
}

impl fmt::Debug for Printer {
    /// Never prints the access code, and hides URL passwords.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Printer")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("ip", &self.ip)
            .field("access_code", &self.access_code.as_ref().map(|_| "****"))
            .field("model", &self.model)
            .field("serial", &self.serial)
            .field("camera_port", &self.camera_port)
            .field(
                "camera_url",
                &self.camera_url.as_deref().map(crate::redact::url_passwords),
            )
            .field("camera_type", &self.camera_type)
            .field("camera_enabled", &self.camera_enabled)
            .field("cert_sha256", &self.cert_sha256)
            .field("detected_camera", &self.detected_camera)
            .field("cert_verified", &self.cert_verified)
            .field("camera_rotation", &self.camera_rotation)
            .field("camera_flip", &self.camera_flip)
            .finish()
    }
}

/// A change to a printer: `None` leaves a field as it is; `Some(None)` clears
/// an optional field.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct PrinterPatch {
    pub name: Option<String>,
    pub ip: Option<Option<String>>,
    pub access_code: Option<Option<String>>,
    pub model: Option<Option<String>>,
    pub serial: Option<Option<String>>,
    pub camera_port: Option<Option<u16>>,
    pub camera_url: Option<Option<String>>,
    pub camera_type: Option<Option<CameraType>>,
    pub camera_enabled: Option<bool>,
    pub camera_rotation: Option<Rotation>,
    pub camera_flip: Option<Flip>,
}

impl PrinterPatch {
    /// The printer with this patch applied (the id is kept).
    pub fn apply(&self, p: &Printer) -> Printer {
        let mut out = p.clone();
        if let Some(v) = &self.name {
            out.name = v.clone();
        }
        if let Some(v) = &self.ip {
            out.ip = v.clone();
        }
        if let Some(v) = &self.access_code {
            out.access_code = v.clone();
        }
        if let Some(v) = &self.model {
            out.model = v.clone();
        }
        if let Some(v) = &self.serial {
            out.serial = v.clone();
        }
        if let Some(v) = self.camera_port {
            out.camera_port = v;
        }
        if let Some(v) = &self.camera_url {
            out.camera_url = v.clone();
        }
        if let Some(v) = self.camera_type {
            out.camera_type = v;
        }
        if let Some(v) = self.camera_enabled {
            out.camera_enabled = v;
        }
        if let Some(v) = self.camera_rotation {
            out.camera_rotation = v;
        }
        if let Some(v) = self.camera_flip {
            out.camera_flip = v;
        }
        out
    }
}

/// Schema migrations: step `i` takes the database from `user_version` `i` to
/// `i + 1`. Later versions append a step; never edit a released one.
const MIGRATIONS: &[&str] = &[
    // 0 -> 1: the printers table.
    "CREATE TABLE printers (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        ip TEXT,
        access_code TEXT,
        model TEXT,
        serial TEXT,
        camera_port INTEGER,
        camera_url TEXT,
        camera_type TEXT,
        camera_enabled INTEGER NOT NULL DEFAULT 0,
        cert_sha256 TEXT,
        created_at TEXT NOT NULL,
        updated_at TEXT NOT NULL
    );",
    // 1 -> 2: the camera detected for a printer of unknown model.
    "ALTER TABLE printers ADD COLUMN detected_camera TEXT;",
    // 2 -> 3: whether a Bambu CA verified the pinned certificate.
    "ALTER TABLE printers ADD COLUMN cert_verified INTEGER NOT NULL DEFAULT 0;",
    // 3 -> 4: how the picture is shown (degrees clockwise; a mirror first).
    "ALTER TABLE printers ADD COLUMN camera_rotation INTEGER NOT NULL DEFAULT 0;
     ALTER TABLE printers ADD COLUMN camera_flip TEXT NOT NULL DEFAULT 'none';",
];

/// The schema version this build writes.
const SCHEMA_VERSION: i64 = MIGRATIONS.len() as i64;

/// How long to wait for another process (the CLI while a server runs)
/// holding the database lock before giving up.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Current time as ISO 8601 UTC, computed by SQLite (no clock code here).
const NOW: &str = "strftime('%Y-%m-%dT%H:%M:%SZ', 'now')";

const COLUMNS: &str = "id, name, ip, access_code, model, serial, camera_port, camera_url, \
                       camera_type, camera_enabled, cert_sha256, detected_camera, cert_verified, \
                       camera_rotation, camera_flip";

/// The database. Safe to share between threads.
pub struct Registry {
    conn: Mutex<Connection>,
    /// Why changes cannot be stored, when they cannot.
    read_only: Option<String>,
}

impl Registry {
    /// Opens (creating with mode 0600 on first run) and migrates the database.
    pub fn open(path: &Path) -> Result<Registry> {
        let label = format!("database {}", path.display());
        let fail = |e: &dyn fmt::Display| Error::Internal(format!("could not open {label}: {e}"));
        create_private(path).map_err(|e| fail(&e))?;
        // No SQLITE_OPEN_CREATE: the file exists now with the right mode; no
        // SQLITE_OPEN_URI: a path is a path; and, as create_private, no
        // symbolic link (NOFOLLOW closes the gap between its check and this).
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX
            | OpenFlags::SQLITE_OPEN_NOFOLLOW;
        let mut conn = Connection::open_with_flags(path, flags).map_err(|e| fail(&e))?;
        configure(&conn, true).map_err(|e| fail(&e))?;
        migrate(&mut conn, &label)?;
        let read_only = write_refused(&mut conn);
        Ok(Registry {
            read_only,
            ..Registry::from_conn(conn)
        })
    }

    /// Why changes and certificate pins cannot be stored (the file or its
    /// folder is read-only: a read-only file system, another user's file),
    /// or None when they can. Found at open time, so that `serve` can say
    /// so at start instead of every change failing later.
    pub fn read_only(&self) -> Option<&str> {
        self.read_only.as_deref()
    }

    /// A private in-memory database, for tests and `--demo` without a file.
    pub fn open_in_memory() -> Result<Registry> {
        let label = "in-memory database";
        let fail = |e: rusqlite::Error| Error::Internal(format!("could not open {label}: {e}"));
        let mut conn = Connection::open_in_memory().map_err(fail)?;
        configure(&conn, false).map_err(fail)?;
        migrate(&mut conn, label)?;
        Ok(Registry::from_conn(conn))
    }

    fn from_conn(conn: Connection) -> Registry {
        Registry {
            conn: Mutex::new(conn),
            read_only: None,
        }
    }

    /// The connection. A panic in another thread while it held the lock
    /// leaves SQLite consistent (an open transaction is rolled back on drop),
    /// so a poisoned lock is still usable.
    fn conn(&self) -> MutexGuard<'_, Connection> {
        crate::sync::lock(&self.conn)
    }

    pub fn list(&self) -> Result<Vec<Printer>> {
        let ctx = "could not list printers";
        let conn = self.conn();
        let mut stmt = conn
            .prepare_cached(&format!("SELECT {COLUMNS} FROM printers ORDER BY id"))
            .map_err(|e| db_error(ctx, e))?;
        let rows = stmt
            .query_map([], StoredRow::read)
            .map_err(|e| db_error(ctx, e))?
            .collect::<rusqlite::Result<Vec<_>>>()
            .map_err(|e| db_error(ctx, e))?;
        rows.into_iter().map(StoredRow::into_printer).collect()
    }

    pub fn get(&self, id: i64) -> Result<Option<Printer>> {
        let conn = self.conn();
        let row = conn
            .query_row(
                &format!("SELECT {COLUMNS} FROM printers WHERE id = ?1"),
                [id],
                StoredRow::read,
            )
            .optional()
            .map_err(|e| db_error(&format!("could not read printer {id}"), e))?;
        row.map(StoredRow::into_printer).transpose()
    }

    /// Stores a new printer (its `id` is ignored) and returns the new id.
    pub fn add(&self, p: &Printer) -> Result<i64> {
        let conn = self.conn();
        conn.execute(
            &format!(
                "INSERT INTO printers (name, ip, access_code, model, serial, camera_port, \
                 camera_url, camera_type, camera_enabled, cert_sha256, detected_camera, \
                 cert_verified, camera_rotation, camera_flip, created_at, updated_at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, {NOW}, {NOW})"
            ),
            params![
                p.name,
                p.ip,
                p.access_code,
                p.model,
                p.serial,
                p.camera_port,
                p.camera_url,
                p.camera_type.map(CameraType::as_str),
                p.camera_enabled,
                p.cert_sha256,
                p.detected_camera.map(BuiltIn::as_str),
                p.cert_verified,
                p.camera_rotation.degrees(),
                p.camera_flip.as_str(),
            ],
        )
        .map_err(|e| self.write_error("could not add printer", e))?;
        // Safe under the lock: no other insert can run on this connection.
        Ok(conn.last_insert_rowid())
    }

    /// Replaces every field of printer `p.id`. False if there is no such printer.
    ///
    /// The certificate pin and the detected camera are left alone: only
    /// `set_cert_pin` and `set_detected_camera` change them.
    pub fn update(&self, p: &Printer) -> Result<bool> {
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE printers SET name = ?2, ip = ?3, access_code = ?4, model = ?5, \
                     serial = ?6, camera_port = ?7, camera_url = ?8, camera_type = ?9, \
                     camera_enabled = ?10, camera_rotation = ?11, camera_flip = ?12, \
                     updated_at = {NOW} WHERE id = ?1"
                ),
                params![
                    p.id,
                    p.name,
                    p.ip,
                    p.access_code,
                    p.model,
                    p.serial,
                    p.camera_port,
                    p.camera_url,
                    p.camera_type.map(CameraType::as_str),
                    p.camera_enabled,
                    p.camera_rotation.degrees(),
                    p.camera_flip.as_str(),
                ],
            )
            .map_err(|e| self.write_error(&format!("could not update printer {}", p.id), e))?;
        Ok(changed > 0)
    }

    /// False if there was no such printer.
    pub fn remove(&self, id: i64) -> Result<bool> {
        let changed = self
            .conn()
            .execute("DELETE FROM printers WHERE id = ?1", [id])
            .map_err(|e| self.write_error(&format!("could not remove printer {id}"), e))?;
        Ok(changed > 0)
    }

    /// Pins (or with None forgets) printer `id`'s certificate fingerprint;
    /// `verified`: a Bambu CA issued it to the printer's serial.
    pub fn set_cert_pin(&self, id: i64, sha256: Option<&str>, verified: bool) -> Result<bool> {
        let verified = verified && sha256.is_some();
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE printers SET cert_sha256 = ?2, cert_verified = ?3, \
                     updated_at = {NOW} WHERE id = ?1"
                ),
                params![id, sha256, verified],
            )
            .map_err(|e| {
                self.write_error(
                    &format!("could not store certificate pin of printer {id}"),
                    e,
                )
            })?;
        Ok(changed > 0)
    }

    /// A failed write: 503 when the registry was found read-only at open
    /// (a folder SQLite may not write fails with "unable to open", not
    /// "readonly"), otherwise as any database error.
    fn write_error(&self, context: &str, e: rusqlite::Error) -> Error {
        match &self.read_only {
            Some(why) => read_only_error(context, why),
            None => db_error(context, e),
        }
    }
}

impl Registry {
    /// Stores (or with None forgets) the camera detected for printer `id`.
    pub fn set_detected_camera(&self, id: i64, camera: Option<BuiltIn>) -> Result<bool> {
        let changed = self
            .conn()
            .execute(
                &format!(
                    "UPDATE printers SET detected_camera = ?2, updated_at = {NOW} WHERE id = ?1"
                ),
                params![id, camera.map(BuiltIn::as_str)],
            )
            .map_err(|e| db_error(&format!("could not store the camera of printer {id}"), e))?;
        Ok(changed > 0)
    }
}

/// Creates `path` with mode 0600 if it is missing, or tightens an existing
/// file that others can read: it holds access codes. SQLite gives its journal
/// the database file's mode, so that is covered too.
///
/// A symbolic link is refused rather than followed: tightening through it
/// would chmod whatever it points at, and printcam would keep its access
/// codes there. The mode is changed through the file opened here (fchmod),
/// never by path, so it is the file that was checked.
fn create_private(path: &Path) -> std::io::Result<()> {
    match OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
    {
        Ok(_) => return Ok(()),
        Err(e) if e.kind() == ErrorKind::AlreadyExists => {}
        Err(e) => return Err(e),
    }
    let file = OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(|e| {
            if e.raw_os_error() == Some(libc::ELOOP) {
                std::io::Error::new(
                    e.kind(),
                    "it is a symbolic link; give the path of the file itself \
                     (printcam does not follow links to the file holding access codes)",
                )
            } else {
                e
            }
        })?;
    let meta = file.metadata()?;
    let mode = meta.permissions().mode() & 0o777;
    if meta.is_file() && mode & 0o077 != 0 {
        log::warn!(
            "database {} had mode {mode:o} (readable by others, and it holds access codes); \
             setting it to 600",
            path.display()
        );
        if let Err(e) = file.set_permissions(std::fs::Permissions::from_mode(0o600)) {
            // Not fatal: the file may belong to another user who chose this.
            log::warn!("could not set mode 600 on {}: {e}", path.display());
        }
    }
    Ok(())
}

fn configure(conn: &Connection, on_disk: bool) -> rusqlite::Result<()> {
    conn.busy_timeout(BUSY_TIMEOUT)?;
    if on_disk {
        // Also the first read of the file: a non-database fails here.
        conn.pragma_update_and_check(None, "journal_mode", "TRUNCATE", |r| r.get::<_, String>(0))?;
        conn.pragma_update(None, "synchronous", "FULL")?;
    }
    conn.pragma_update(None, "foreign_keys", true)?;
    Ok(())
}

/// Brings the schema up to `SCHEMA_VERSION` in one transaction, so a crash
/// mid-way leaves the old version intact. IMMEDIATE takes the write lock
/// before reading the version, so two processes cannot both migrate.
fn migrate(conn: &mut Connection, label: &str) -> Result<()> {
    let fail = |e: &dyn fmt::Display| Error::Internal(format!("could not migrate {label}: {e}"));
    let tx = conn
        .transaction_with_behavior(TransactionBehavior::Immediate)
        .map_err(|e| fail(&e))?;
    let found: i64 = tx
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .map_err(|e| fail(&e))?;
    if found > SCHEMA_VERSION {
        return Err(Error::Internal(format!(
            "{label} was written by a newer printcam (schema {found}); \
             this build knows up to {SCHEMA_VERSION}"
        )));
    }
    let first =
        usize::try_from(found).map_err(|_| fail(&format!("unexpected schema version {found}")))?;
    if first == MIGRATIONS.len() {
        return Ok(());
    }
    for (i, step) in MIGRATIONS.iter().enumerate().skip(first) {
        tx.execute_batch(step)
            .map_err(|e| fail(&format!("step to schema {} failed: {e}", i + 1)))?;
    }
    tx.pragma_update(None, "user_version", SCHEMA_VERSION)
        .map_err(|e| fail(&e))?;
    tx.commit().map_err(|e| fail(&e))?;
    if found > 0 {
        log::info!("{label} migrated from schema {found} to {SCHEMA_VERSION}");
    }
    Ok(())
}

/// Why the database refuses writes, or None if it takes them: a header
/// write in a transaction that is rolled back (SQLite opens a file it may
/// not write read-only without saying so, and a folder it may not write
/// fails only at the first journal). Another process holding the lock past
/// the busy timeout is not a read-only registry.
fn write_refused(conn: &mut Connection) -> Option<String> {
    use rusqlite::ErrorCode::{CannotOpen, PermissionDenied, ReadOnly};
    let probe = conn.transaction().and_then(|tx| {
        let version: i64 = tx.pragma_query_value(None, "user_version", |r| r.get(0))?;
        tx.pragma_update(None, "user_version", version)
        // Dropping tx rolls the write back.
    });
    match probe {
        Err(e)
            if matches!(
                e.sqlite_error_code(),
                Some(ReadOnly | CannotOpen | PermissionDenied)
            ) =>
        {
            Some(e.to_string())
        }
        _ => None,
    }
}

/// SQLite errors never contain bound values, so access codes cannot leak here.
/// A read-only registry is the box's state, not a failure of printcam: 503.
fn db_error(context: &str, e: rusqlite::Error) -> Error {
    if e.sqlite_error_code() == Some(rusqlite::ErrorCode::ReadOnly) {
        return read_only_error(context, &e.to_string());
    }
    Error::Internal(format!("{context}: {e}"))
}

fn read_only_error(context: &str, why: &str) -> Error {
    Error::Unavailable(format!(
        "{context}: the registry is read-only ({why}); changes cannot be stored"
    ))
}

/// A row as stored, before the checks SQLite cannot do for us.
struct StoredRow {
    printer: Printer,
    camera_port: Option<i64>,
    camera_type: Option<String>,
    detected_camera: Option<String>,
    camera_rotation: i64,
    camera_flip: String,
}

impl StoredRow {
    fn read(r: &rusqlite::Row<'_>) -> rusqlite::Result<StoredRow> {
        Ok(StoredRow {
            printer: Printer {
                id: r.get(0)?,
                name: r.get(1)?,
                ip: r.get(2)?,
                access_code: r.get(3)?,
                model: r.get(4)?,
                serial: r.get(5)?,
                camera_port: None,
                camera_url: r.get(7)?,
                camera_type: None,
                camera_enabled: r.get(9)?,
                cert_sha256: r.get(10)?,
                detected_camera: None,
                cert_verified: r.get(12)?,
                ..Printer::default()
            },
            camera_port: r.get(6)?,
            camera_type: r.get(8)?,
            detected_camera: r.get(11)?,
            camera_rotation: r.get(13)?,
            camera_flip: r.get(14)?,
        })
    }

    fn into_printer(self) -> Result<Printer> {
        let mut p = self.printer;
        let bad =
            |what: String| Error::Internal(format!("printer {} in the database: {what}", p.id));
        p.camera_port = self
            .camera_port
            .map(|v| u16::try_from(v).map_err(|_| bad(format!("camera port {v} out of range"))))
            .transpose()?;
        p.camera_type = self
            .camera_type
            .map(|t| t.parse::<CameraType>().map_err(bad))
            .transpose()?;
        p.detected_camera = self
            .detected_camera
            .map(|c| c.parse::<BuiltIn>().map_err(bad))
            .transpose()?;
        p.camera_rotation = Rotation::from_degrees(self.camera_rotation).ok_or_else(|| {
            bad(format!(
                "camera rotation {} is not 0, 90, 180 or 270",
                self.camera_rotation
            ))
        })?;
        p.camera_flip = Flip::parse(&self.camera_flip).ok_or_else(|| {
            bad(format!(
                "camera flip {:?} is not none, horizontal or vertical",
                self.camera_flip
            ))
        })?;
        Ok(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A fresh directory under the system temp dir, removed on drop.
    struct TestDir(PathBuf);

    impl TestDir {
        fn new(name: &str) -> TestDir {
            static NEXT: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "printcam-registry-{}-{}-{name}",
                std::process::id(),
                NEXT.fetch_add(1, Ordering::Relaxed)
            ));
            std::fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("printcam.db")
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn mode(path: &Path) -> u32 {
        std::fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    fn user_version(path: &Path) -> i64 {
        Connection::open(path)
            .unwrap()
            .pragma_query_value(None, "user_version", |r| r.get(0))
            .unwrap()
    }

    fn full() -> Printer {
        Printer {
            id: 0,
            name: "X1C workshop".into(),
            ip: Some("192.168.1.50".into()),
            access_code: Some("12345678".into()),
            model: Some("X1C".into()),
            serial: Some("00M09A000000000".into()),
            camera_port: Some(65535),
            camera_url: Some("rtsp://cam.local/stream".into()),
            camera_type: Some(CameraType::Rtsp),
            camera_enabled: true,
            cert_sha256: Some("ab".repeat(32)),
            detected_camera: Some(BuiltIn::Rtsps),
            cert_verified: true,
            camera_rotation: Rotation::R270,
            camera_flip: Flip::Vertical,
            // Not stored yet: the default is what a reload gives back.
            rtsp_client: crate::camera::RtspClient::default(),
        }
    }

    fn minimal() -> Printer {
        Printer {
            name: "bare".into(),
            ..Printer::default()
        }
    }

    fn internal_message(r: Result<impl Sized>) -> String {
        match r {
            Err(Error::Internal(m)) => m,
            Err(e) => panic!("expected Error::Internal, got {e:?}"),
            Ok(_) => panic!("expected an error"),
        }
    }

    /// `.cargo/config.toml` (and the OpenWrt Makefile) build the bundled
    /// SQLite without what printcam does not use; everything printcam does
    /// use is exercised by the other tests here.
    #[cfg(feature = "bundled-sqlite")]
    #[test]
    fn bundled_sqlite_leaves_out_what_printcam_does_not_use() {
        let conn = rusqlite::Connection::open_in_memory().unwrap();
        let mut stmt = conn.prepare("PRAGMA compile_options").unwrap();
        let options: Vec<String> = stmt
            .query_map([], |r| r.get(0))
            .unwrap()
            .collect::<rusqlite::Result<_>>()
            .unwrap();
        for omitted in ["OMIT_LOAD_EXTENSION", "OMIT_JSON", "OMIT_DEPRECATED"] {
            assert!(
                options.iter().any(|o| o == omitted),
                "{omitted}: {options:?}"
            );
        }
        for gone in ["ENABLE_FTS3", "ENABLE_FTS5", "ENABLE_RTREE", "ENABLE_STAT4"] {
            assert!(
                !options.iter().any(|o| o.starts_with(gone)),
                "{gone}: {options:?}"
            );
        }
    }

    #[test]
    fn round_trip_every_field_some_and_none() {
        let reg = Registry::open_in_memory().unwrap();
        let a = reg.add(&full()).unwrap();
        let b = reg.add(&minimal()).unwrap();
        assert_ne!(a, b);
        assert_eq!(reg.get(a).unwrap(), Some(Printer { id: a, ..full() }));
        assert_eq!(reg.get(b).unwrap(), Some(Printer { id: b, ..minimal() }));
        for t in CameraType::ALL {
            let id = reg
                .add(&Printer {
                    camera_type: Some(t),
                    ..minimal()
                })
                .unwrap();
            assert_eq!(reg.get(id).unwrap().unwrap().camera_type, Some(t));
        }
        assert_eq!(reg.get(9999).unwrap(), None);
    }

    #[test]
    fn add_ignores_id_and_list_is_ordered_by_id() {
        let reg = Registry::open_in_memory().unwrap();
        let ids: Vec<i64> = (0..3)
            .map(|i| {
                reg.add(&Printer {
                    id: 100 - i,
                    name: format!("p{i}"),
                    ..Printer::default()
                })
                .unwrap()
            })
            .collect();
        let listed: Vec<i64> = reg.list().unwrap().iter().map(|p| p.id).collect();
        let mut sorted = ids.clone();
        sorted.sort();
        assert_eq!(listed, sorted);
        assert!(!ids.contains(&100));
    }

    #[test]
    fn ids_are_never_reused() {
        let reg = Registry::open_in_memory().unwrap();
        let a = reg.add(&minimal()).unwrap();
        let b = reg.add(&minimal()).unwrap();
        assert!(reg.remove(b).unwrap());
        assert!(!reg.remove(b).unwrap());
        let c = reg.add(&minimal()).unwrap();
        assert!(c > b && b > a);
    }

    #[test]
    fn update_replaces_fields_but_not_the_pin_or_detection() {
        let reg = Registry::open_in_memory().unwrap();
        let id = reg.add(&full()).unwrap();
        let replaced = Printer {
            id,
            cert_sha256: Some("cd".repeat(32)),
            ..minimal()
        };
        assert!(reg.update(&replaced).unwrap());
        assert_eq!(
            reg.get(id).unwrap(),
            Some(Printer {
                id,
                cert_sha256: full().cert_sha256,
                detected_camera: full().detected_camera,
                cert_verified: full().cert_verified,
                ..minimal()
            })
        );
        assert!(!reg
            .update(&Printer {
                id: 9999,
                ..minimal()
            })
            .unwrap());
    }

    #[test]
    fn cert_pin_set_and_forgotten() {
        let reg = Registry::open_in_memory().unwrap();
        let id = reg.add(&minimal()).unwrap();
        assert!(reg.set_cert_pin(id, Some("ef"), false).unwrap());
        assert_eq!(
            reg.get(id).unwrap().unwrap().cert_sha256.as_deref(),
            Some("ef")
        );
        assert!(!reg.get(id).unwrap().unwrap().cert_verified);
        assert!(reg.set_cert_pin(id, Some("ef"), true).unwrap());
        assert!(reg.get(id).unwrap().unwrap().cert_verified);
        // Forgetting the pin forgets how it was trusted.
        assert!(reg.set_cert_pin(id, None, true).unwrap());
        let p = reg.get(id).unwrap().unwrap();
        assert_eq!((p.cert_sha256, p.cert_verified), (None, false));
        assert!(!reg.set_cert_pin(9999, Some("ef"), false).unwrap());
    }

    #[test]
    fn detected_camera_is_stored_forgotten_and_kept_by_update() {
        let reg = Registry::open_in_memory().unwrap();
        let id = reg.add(&minimal()).unwrap();
        assert_eq!(reg.get(id).unwrap().unwrap().detected_camera, None);
        assert!(reg.set_detected_camera(id, Some(BuiltIn::Chamber)).unwrap());
        assert!(reg.update(&Printer { id, ..minimal() }).unwrap());
        let p = reg.get(id).unwrap().unwrap();
        assert_eq!(p.detected_camera, Some(BuiltIn::Chamber));
        assert!(reg.set_detected_camera(id, None).unwrap());
        assert_eq!(reg.get(id).unwrap().unwrap().detected_camera, None);
        assert!(!reg.set_detected_camera(9999, None).unwrap());
        reg.conn()
            .execute(
                "UPDATE printers SET detected_camera = 'hls' WHERE id = ?1",
                [id],
            )
            .unwrap();
        assert!(internal_message(reg.get(id)).contains("hls"));
    }

    /// A file an older printcam left at schema `version`, holding the row
    /// `insert` adds, opened (so migrated) by this build.
    fn opened_at_schema(version: usize, insert: &str) -> (TestDir, Registry) {
        let dir = TestDir::new(&format!("v{version}"));
        let conn = Connection::open(dir.db()).unwrap();
        for step in &MIGRATIONS[..version] {
            conn.execute_batch(step).unwrap();
        }
        conn.execute(insert, []).unwrap();
        conn.pragma_update(None, "user_version", version as i64)
            .unwrap();
        drop(conn);
        let reg = Registry::open(&dir.db()).unwrap();
        (dir, reg)
    }

    #[test]
    fn schema_1_file_gains_the_detected_camera_column() {
        let (dir, reg) = opened_at_schema(
            1,
            "INSERT INTO printers (name, ip, model, created_at, updated_at) \
             VALUES ('old', '192.168.1.7', 'Mystery', 'x', 'x')",
        );
        let all = reg.list().unwrap();
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].model.as_deref(), Some("Mystery"));
        assert_eq!(all[0].detected_camera, None);
        assert!(reg
            .set_detected_camera(all[0].id, Some(BuiltIn::Rtsps))
            .unwrap());
        drop(reg);
        assert_eq!(user_version(&dir.db()), SCHEMA_VERSION);
    }

    #[test]
    fn schema_2_file_gains_rotation_and_flip() {
        let (dir, reg) = opened_at_schema(
            2,
            "INSERT INTO printers (name, ip, detected_camera, created_at, updated_at) \
             VALUES ('old', '192.168.1.7', 'chamber', 'x', 'x')",
        );
        let old = reg.list().unwrap().remove(0);
        assert_eq!(old.detected_camera, Some(BuiltIn::Chamber));
        assert_eq!(old.orientation(), Orientation::default());
        let turned = Printer {
            camera_rotation: Rotation::R90,
            camera_flip: Flip::Horizontal,
            ..old.clone()
        };
        assert!(reg.update(&turned).unwrap());
        assert_eq!(reg.get(old.id).unwrap(), Some(turned));
        drop(reg);
        assert_eq!(user_version(&dir.db()), SCHEMA_VERSION);
    }

    #[test]
    fn every_rotation_and_flip_round_trips_and_bad_stored_ones_are_errors() {
        let reg = Registry::open_in_memory().unwrap();
        for o in Orientation::all() {
            let p = Printer {
                camera_rotation: o.rotation,
                camera_flip: o.flip,
                ..minimal()
            };
            let id = reg.add(&p).unwrap();
            assert_eq!(reg.get(id).unwrap().unwrap().orientation(), o);
        }
        let id = reg.add(&minimal()).unwrap();
        let set = |sql: &str| reg.conn().execute(sql, [id]).unwrap();
        set("UPDATE printers SET camera_rotation = 45 WHERE id = ?1");
        assert!(internal_message(reg.get(id)).contains("rotation 45"));
        set("UPDATE printers SET camera_rotation = 0, camera_flip = 'diagonal' WHERE id = ?1");
        assert!(internal_message(reg.get(id)).contains("diagonal"));
    }

    #[test]
    fn updated_at_is_bumped() {
        let dir = TestDir::new("updated-at");
        let reg = Registry::open(&dir.db()).unwrap();
        let id = reg.add(&minimal()).unwrap();
        let stamps = |reg: &Registry| -> (String, String) {
            reg.conn()
                .query_row(
                    "SELECT created_at, updated_at FROM printers WHERE id = ?1",
                    [id],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .unwrap()
        };
        // Force an old timestamp rather than sleeping past a second boundary.
        reg.conn()
            .execute(
                "UPDATE printers SET updated_at = '2000-01-01T00:00:00Z'",
                [],
            )
            .unwrap();
        assert!(reg.update(&Printer { id, ..minimal() }).unwrap());
        let (created, updated) = stamps(&reg);
        assert!(updated.as_str() > "2000-01-01T00:00:00Z", "{updated}");
        assert!(created.ends_with('Z') && created.len() == 20, "{created}");
    }

    #[test]
    fn unknown_stored_camera_type_is_an_error_naming_the_printer() {
        let reg = Registry::open_in_memory().unwrap();
        let id = reg.add(&minimal()).unwrap();
        reg.conn()
            .execute(
                "UPDATE printers SET camera_type = 'hls' WHERE id = ?1",
                [id],
            )
            .unwrap();
        let m = internal_message(reg.get(id));
        assert!(
            m.contains(&format!("printer {id}")) && m.contains("hls"),
            "{m}"
        );
        assert!(internal_message(reg.list()).contains(&format!("printer {id}")));
    }

    #[test]
    fn out_of_range_stored_port_is_an_error() {
        let reg = Registry::open_in_memory().unwrap();
        let id = reg.add(&minimal()).unwrap();
        reg.conn()
            .execute(
                "UPDATE printers SET camera_port = 70000 WHERE id = ?1",
                [id],
            )
            .unwrap();
        let m = internal_message(reg.get(id));
        assert!(
            m.contains(&format!("printer {id}")) && m.contains("70000"),
            "{m}"
        );
    }

    #[test]
    fn new_file_is_created_mode_0600_and_reopen_keeps_data() {
        let dir = TestDir::new("create");
        let path = dir.db();
        let id = {
            let reg = Registry::open(&path).unwrap();
            reg.add(&full()).unwrap()
        };
        assert_eq!(mode(&path), 0o600);
        // SQLite gives the journal the database's mode.
        let journal = dir.0.join("printcam.db-journal");
        assert_eq!(mode(&journal), 0o600);
        assert_eq!(user_version(&path), SCHEMA_VERSION);
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.list().unwrap(), vec![Printer { id, ..full() }]);
        let journal: String = reg
            .conn()
            .pragma_query_value(None, "journal_mode", |r| r.get(0))
            .unwrap();
        assert_eq!(journal, "truncate");
        let busy: i64 = reg
            .conn()
            .pragma_query_value(None, "busy_timeout", |r| r.get(0))
            .unwrap();
        assert_eq!(busy, 5000);
    }

    #[test]
    fn loose_existing_file_is_tightened() {
        let dir = TestDir::new("tighten");
        let path = dir.db();
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        Registry::open(&path).unwrap();
        assert_eq!(mode(&path), 0o600);
    }

    #[test]
    fn a_symbolic_link_is_refused_and_its_target_left_alone() {
        let dir = TestDir::new("symlink");
        let target = dir.0.join("elsewhere");
        std::fs::write(&target, b"").unwrap();
        std::fs::set_permissions(&target, std::fs::Permissions::from_mode(0o644)).unwrap();
        let path = dir.db();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let m = internal_message(Registry::open(&path));
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("symbolic link"), "{m}");
        assert_eq!(mode(&target), 0o644, "the link's target was chmodded");
        assert_eq!(
            std::fs::read(&target).unwrap(),
            b"",
            "the target was written"
        );
    }

    #[test]
    fn a_dangling_symbolic_link_is_refused_and_nothing_created() {
        let dir = TestDir::new("dangling");
        let target = dir.0.join("not-yet");
        let path = dir.db();
        std::os::unix::fs::symlink(&target, &path).unwrap();
        let m = internal_message(Registry::open(&path));
        assert!(m.contains("symbolic link"), "{m}");
        assert!(!target.exists(), "a file was created through the link");
    }

    #[test]
    fn a_writable_file_is_not_read_only() {
        let dir = TestDir::new("writable");
        let reg = Registry::open(&dir.db()).unwrap();
        assert_eq!(reg.read_only(), None);
        assert_eq!(Registry::open_in_memory().unwrap().read_only(), None);
    }

    #[test]
    fn a_connection_that_cannot_write_is_found_read_only_and_left_unchanged() {
        let dir = TestDir::new("probe");
        let path = dir.db();
        drop(Registry::open(&path).unwrap());
        let mut ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let why = write_refused(&mut ro).expect("a read-only connection");
        assert!(why.contains("readonly"), "{why}");
        let mut rw = Connection::open(&path).unwrap();
        assert_eq!(write_refused(&mut rw), None);
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    #[test]
    fn writes_to_a_read_only_registry_are_unavailable_not_internal() {
        let dir = TestDir::new("ro-write");
        let path = dir.db();
        drop(Registry::open(&path).unwrap());
        let ro = Connection::open_with_flags(&path, OpenFlags::SQLITE_OPEN_READ_ONLY).unwrap();
        let reg = Registry::from_conn(ro);
        match reg.add(&full()) {
            Err(Error::Unavailable(m)) => assert!(m.contains("read-only"), "{m}"),
            other => panic!("expected Unavailable, got {other:?}"),
        }
    }

    #[test]
    fn empty_v0_file_is_migrated() {
        let dir = TestDir::new("v0");
        let path = dir.db();
        std::fs::write(&path, b"").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        let reg = Registry::open(&path).unwrap();
        assert_eq!(reg.list().unwrap(), vec![]);
        drop(reg);
        assert_eq!(user_version(&path), SCHEMA_VERSION);
    }

    #[test]
    fn newer_schema_is_refused_and_left_alone() {
        let dir = TestDir::new("newer");
        let path = dir.db();
        let newer = SCHEMA_VERSION + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();
        let m = internal_message(Registry::open(&path));
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(
            m.contains(&format!(
                "newer printcam (schema {newer}); this build knows up to {SCHEMA_VERSION}"
            )),
            "{m}"
        );
        assert_eq!(user_version(&path), newer);
    }

    #[test]
    fn garbage_file_is_a_clear_error() {
        let dir = TestDir::new("garbage");
        let path = dir.db();
        std::fs::write(&path, vec![b'x'; 4096]).unwrap();
        let m = internal_message(Registry::open(&path));
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("not a database"), "{m}");
    }

    #[test]
    fn directory_instead_of_file_is_a_clear_error() {
        let dir = TestDir::new("isdir");
        let m = internal_message(Registry::open(&dir.0));
        assert!(m.contains(&dir.0.display().to_string()), "{m}");
    }

    #[test]
    fn unwritable_location_is_a_clear_error() {
        // Tests run as root, which ignores directory permissions, so a
        // read-only directory would not fail; a path "inside" a regular file
        // fails for everyone (ENOTDIR).
        let dir = TestDir::new("unwritable");
        let not_a_dir = dir.0.join("plain-file");
        std::fs::write(&not_a_dir, b"").unwrap();
        let path = not_a_dir.join("printcam.db");
        let m = internal_message(Registry::open(&path));
        assert!(m.contains(&path.display().to_string()), "{m}");
        assert!(m.contains("could not open database"), "{m}");
    }

    #[test]
    fn concurrent_adds_get_distinct_ids() {
        let dir = TestDir::new("threads");
        let reg = Arc::new(Registry::open(&dir.db()).unwrap());
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let reg = Arc::clone(&reg);
                std::thread::Builder::new()
                    .name(format!("registry-test-{t}"))
                    .spawn(move || {
                        (0..5)
                            .map(|i| {
                                reg.add(&Printer {
                                    name: format!("t{t}-{i}"),
                                    ..Printer::default()
                                })
                                .unwrap()
                            })
                            .collect::<Vec<i64>>()
                    })
                    .unwrap()
            })
            .collect();
        let mut ids: Vec<i64> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        ids.sort();
        ids.dedup();
        assert_eq!(ids.len(), 40);
        assert_eq!(reg.list().unwrap().len(), 40);
    }

    #[test]
    fn second_connection_to_the_same_file_works() {
        // The CLI while a server runs: two registries on one file.
        let dir = TestDir::new("two");
        let a = Registry::open(&dir.db()).unwrap();
        let b = Registry::open(&dir.db()).unwrap();
        let id = a.add(&minimal()).unwrap();
        assert_eq!(b.get(id).unwrap(), Some(Printer { id, ..minimal() }));
    }

    #[test]
    fn debug_hides_the_access_code() {
        // camera_url stays None: URL redaction is tested in redact.rs.
        let p = Printer {
            camera_url: None,
            access_code: Some("s3cr3tc0de".into()),
            ..full()
        };
        let shown = format!("{p:?}");
        assert!(!shown.contains("s3cr3tc0de"), "{shown}");
        assert!(shown.contains("****"), "{shown}");
    }
}
