//! The cameras printcam serves: printers from the registry (plus the built-in
//! demo camera), each with at most one hub, built from its settings on first
//! use and replaced when the settings change.

pub mod build;
mod validate;

pub use build::quirks;
pub use validate::validate;

use crate::camera::{camera_for_model, BuiltIn, Camera, CameraType, PrinterLogin};
use crate::config::Settings;
use crate::error::{Error, Result};
use crate::frame::Frame;
use crate::gop::Gop;
use crate::hub::{Hub, HubConfig, HubStats};
use crate::registry::{Printer, PrinterPatch, Registry};
use crate::source::Source;
use crate::sources::exclusive::Lease;
use crate::sources::rtsp_h264::Refusal;
use crate::sources::tofu::Tofu;
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

/// The demo camera's printer id; registry ids start at 1.
pub const DEMO_ID: i64 = 0;

pub use crate::camera::CameraKind;

/// The camera printer `p`'s endpoints serve, and what connecting to it
/// needs, from its stored settings.
pub fn camera_of(p: &Printer) -> Camera {
    if p.id == DEMO_ID {
        return Camera::Demo;
    }
    stored_camera(p)
}

/// The camera `p`'s settings name, whatever its id (a printer being added
/// has none yet, which is the demo's).
fn stored_camera(p: &Printer) -> Camera {
    if let (true, Some(kind), Some(url)) = (p.camera_enabled, p.camera_type, &p.camera_url) {
        return Camera::External {
            kind,
            url: url.clone(),
        };
    }
    let Some(host) = p.ip.clone() else {
        return Camera::None;
    };
    let (host, access_code) = match (host.is_empty(), &p.access_code) {
        (false, Some(code)) if !code.is_empty() => (host, code.clone()),
        _ => {
            let id = p.id;
            let what = if host.is_empty() { "ip" } else { "access-code" };
            return Camera::Unusable(format!(
                "printer {id} has no {what}: set it with `printcam printer set {id} --{what} …`"
            ));
        }
    };
    let login = PrinterLogin {
        host,
        port: p.camera_port,
        access_code,
    };
    match camera_for_model(p.model.as_deref()).or(p.detected_camera) {
        Some(kind) => Camera::BuiltIn { kind, login },
        None => Camera::Undetected { login },
    }
}

impl CameraKind {
    pub fn of(p: &Printer) -> CameraKind {
        camera_of(p).kind()
    }
}

/// Whether `p`'s camera is read by an RTSP client, so that its
/// `rtsp_client` counts: an rtsp:// or rtsps:// external camera, or a
/// printer's RTSPS one. None while that is not known (no camera yet, or a
/// printer whose camera is not detected yet).
pub fn reads_rtsp(p: &Printer) -> Option<bool> {
    match stored_camera(p).kind() {
        CameraKind::External(kind) => Some(kind == CameraType::Rtsp),
        CameraKind::BuiltIn(kind) => Some(kind == BuiltIn::Rtsps),
        CameraKind::Demo => Some(false),
        CameraKind::Undetected | CameraKind::None => None,
    }
}

/// True when the printer's built-in camera kind was detected (its model
/// is unknown) rather than known from the model.
pub fn camera_detected(p: &Printer) -> bool {
    p.detected_camera.is_some() && configured_kind(p) == CameraKind::Undetected
}

/// The kind the settings ask for, leaving out what detection found: a
/// detection being stored does not change the camera a hub serves.
fn configured_kind(p: &Printer) -> CameraKind {
    if p.detected_camera.is_none() {
        return CameraKind::of(p);
    }
    CameraKind::of(&Printer {
        detected_camera: None,
        ..p.clone()
    })
}

/// What a save stored, and warnings for the user about it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Saved<T> {
    pub value: T,
    pub warnings: Vec<String>,
}

impl<T> Saved<T> {
    fn logged(self) -> Self {
        for w in &self.warnings {
            log::warn!("{w}");
        }
        self
    }
}

/// True when `b` sends its camera connection somewhere `a` did not: another
/// address or port.
pub fn moves_printer(a: &Printer, b: &Printer) -> bool {
    a.ip != b.ip || a.camera_port != b.camera_port
}

/// Why a printer that moves to another address or port cannot keep its
/// stored access code, unless `patch` gives one (or leaves no address).
fn needs_new_code(patch: &PrinterPatch, updated: &Printer) -> Result<()> {
    if updated.ip.is_none() || patch.access_code.is_some() {
        return Ok(());
    }
    Err(Error::Invalid(
        "access_code is required when ip or camera_port changes: the stored access code is \
         not sent to a new address, and the pinned certificate is forgotten"
            .into(),
    ))
}

/// The test endpoint's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestResult {
    pub success: bool,
    pub resolution: Option<String>,
    pub error: Option<String>,
    /// The camera kind afterwards (`CameraKind::as_str`), and whether it
    /// was detected rather than known from the model.
    pub camera: &'static str,
    pub detected: bool,
}

#[derive(Clone)]
struct Entry {
    /// The settings the hub was built from; a change means a new hub.
    built_from: Printer,
    hub: Hub,
    /// An MP4 hub's group of pictures.
    gop: Option<Arc<Gop>>,
}

/// One map of hubs: the MJPEG ones, or the MP4 ones.
type Hubs = Mutex<HashMap<i64, Entry>>;

/// Every camera printcam knows, and the hubs of those in use.
pub struct Cameras {
    registry: Arc<Registry>,
    settings: Settings,
    hubs: Hubs,
    /// `stream.mp4` hubs (H.264 passed through), beside the MJPEG ones.
    mp4_hubs: Hubs,
    /// Per camera: which of its two hubs is connected (one at a time).
    leases: Mutex<HashMap<i64, Arc<Lease>>>,
    /// Per camera: why the native RTSP client cannot take its stream, once
    /// found; forgotten when its settings change.
    refusals: Mutex<HashMap<i64, Arc<Refusal>>>,
    /// Set by `shutdown`: no hub is made after it.
    shut_down: std::sync::atomic::AtomicBool,
    /// Per printer: the certificate trust its sources share, and the
    /// settings it was made for.
    trusts: Mutex<HashMap<i64, (Printer, Arc<Tofu>)>>,
}

impl Cameras {
    pub fn new(registry: Arc<Registry>, settings: Settings) -> Arc<Cameras> {
        Arc::new(Cameras {
            registry,
            settings,
            hubs: Mutex::new(HashMap::new()),
            mp4_hubs: Mutex::new(HashMap::new()),
            leases: Mutex::new(HashMap::new()),
            refusals: Mutex::new(HashMap::new()),
            shut_down: std::sync::atomic::AtomicBool::new(false),
            trusts: Mutex::new(HashMap::new()),
        })
    }

    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    pub fn settings(&self) -> &Settings {
        &self.settings
    }

    /// All printers, the demo camera first when it is enabled.
    pub fn printers(&self) -> Result<Vec<Printer>> {
        let mut all = Vec::new();
        if self.settings.demo {
            all.push(demo_printer());
        }
        all.extend(self.registry.list()?);
        Ok(all)
    }

    /// One printer, or the 404 every camera endpoint gives for an unknown id.
    pub fn printer(&self, id: i64) -> Result<Printer> {
        if id == DEMO_ID && self.settings.demo {
            return Ok(demo_printer());
        }
        self.registry
            .get(id)?
            .ok_or_else(|| Error::NotFound("Printer not found".into()))
    }

    /// Checks and stores a new printer; returns its id. Warnings are logged.
    pub fn add_printer(&self, p: &Printer) -> Result<i64> {
        self.add(p).map(|saved| saved.logged().value)
    }

    /// Checks and stores a new printer: its id, and what the caller should
    /// show the user (a host that does not resolve yet).
    pub fn add(&self, p: &Printer) -> Result<Saved<i64>> {
        let mut warnings = validate(p, self.settings.url_policy())?;
        warnings.extend(self.name_taken(p)?);
        let value = self.registry.add(p)?;
        Ok(Saved { value, warnings })
    }

    /// A warning when another printer has the same name: go2rtc-style URLs
    /// (`?src=NAME`) and people pick printers by it.
    fn name_taken(&self, p: &Printer) -> Result<Option<String>> {
        let clash = self
            .printers()?
            .into_iter()
            .find(|other| other.id != p.id && other.name.eq_ignore_ascii_case(p.name.trim()));
        Ok(clash.map(|other| {
            format!(
                "printer {} is also called \"{}\"; ?src= by name picks the first",
                other.id, other.name
            )
        }))
    }

    /// `update`, with its warnings logged.
    pub fn update_printer(&self, id: i64, patch: &PrinterPatch) -> Result<Printer> {
        self.update(id, patch).map(|saved| saved.logged().value)
    }

    /// Applies a change, checks the result and stores it. When the change
    /// is to the camera itself, the printer's hub (if any) is closed so the
    /// next consumer connects with the new settings; a new name keeps the
    /// viewers watching. A change of address or port forgets the pinned certificate and must
    /// carry the access code: the stored one is never sent somewhere new.
    pub fn update(&self, id: i64, patch: &PrinterPatch) -> Result<Saved<Printer>> {
        refuse_demo(id)?;
        let old = self.printer(id)?;
        let mut updated = patch.apply(&old);
        let moved = moves_printer(&old, &updated);
        if moved {
            needs_new_code(patch, &updated)?;
            updated.cert_sha256 = None;
        }
        // What was found at the old address, or for the old model, may not
        // hold for the new ones.
        let redetect = moved || old.model != updated.model;
        if redetect {
            updated.detected_camera = None;
        }
        let mut warnings = validate(&updated, self.settings.url_policy())?;
        if updated.name != old.name {
            warnings.extend(self.name_taken(&updated)?);
        }
        if !self.registry.update(&updated)? {
            return Err(Error::NotFound("Printer not found".into()));
        }
        if moved && old.cert_sha256.is_some() {
            self.registry.set_cert_pin(id, None, false)?;
        }
        if redetect && old.detected_camera.is_some() {
            self.registry.set_detected_camera(id, None)?;
        }
        let was_detecting = configured_kind(&old) == CameraKind::Undetected;
        if !same_camera(&old, &updated) || (redetect && was_detecting) {
            self.close_hub(id);
        }
        Ok(Saved {
            value: updated,
            warnings,
        })
    }

    pub fn remove_printer(&self, id: i64) -> Result<()> {
        refuse_demo(id)?;
        // Gone from the registry first: a hub asked for while the old ones
        // close (the MJPEG side asks for its MP4 hub) is then not made.
        if !self.registry.remove(id)? {
            return Err(Error::NotFound("Printer not found".into()));
        }
        self.close_hub(id);
        Ok(())
    }

    /// Forgets the pinned certificate so the next connection pins anew.
    pub fn forget_cert(&self, id: i64) -> Result<()> {
        refuse_demo(id)?;
        if !self.registry.set_cert_pin(id, None, false)? {
            return Err(Error::NotFound("Printer not found".into()));
        }
        self.close_hub(id);
        Ok(())
    }

    /// The hub serving printer `id`, made (not started) on first use.
    pub fn hub(self: &Arc<Self>, id: i64) -> Result<Hub> {
        let entry = self.entry(&self.hubs, id, "printer", |p| {
            let config = HubConfig {
                orientation: p.orientation(),
                ..self.hub_config()
            };
            Ok((build::for_printer(p, self)?, config, None))
        })?;
        Ok(entry.hub)
    }

    /// The hub of printer `id`'s `stream.mp4` and its group of pictures.
    /// Refused once the camera's stream proved one the native client cannot
    /// take (its MJPEG then comes from ffmpeg's RTSP client).
    pub fn mp4_hub(self: &Arc<Self>, id: i64) -> Result<(Hub, Arc<Gop>)> {
        if let Some(why) = self.refusal(id).get() {
            return Err(Error::Unavailable(format!(
                "stream.mp4 and stream.m3u8 pass the camera's H.264 through, and this \
                 camera's stream cannot be: {why}; camera/stream serves it as MJPEG"
            )));
        }
        let entry = self.entry(&self.mp4_hubs, id, "mp4", |p| {
            let (source, gop) = build::mp4_for_printer(p, self)?;
            Ok((source, self.hub_config(), Some(gop)))
        })?;
        let gop = entry
            .gop
            .ok_or_else(|| Error::Internal("an MP4 hub without its pictures".into()))?;
        Ok((entry.hub, gop))
    }

    /// Printer `id`'s hub in `map`, made by `build` on first use and when
    /// the printer's camera settings changed.
    fn entry(
        self: &Arc<Self>,
        map: &Hubs,
        id: i64,
        kind: &str,
        build: impl FnOnce(&Printer) -> Result<(Arc<dyn Source>, HubConfig, Option<Arc<Gop>>)>,
    ) -> Result<Entry> {
        let printer = self.printer(id)?;
        let mut hubs = crate::sync::lock(map);
        if self.shut_down.load(std::sync::atomic::Ordering::SeqCst) {
            return Err(Error::Unavailable("printcam is shutting down".into()));
        }
        if let Some(entry) = hubs.get(&id) {
            if same_camera(&entry.built_from, &printer) {
                return Ok(entry.clone());
            }
        }
        let (source, config, gop) = build(&printer)?;
        let hub = Hub::new(format!("{kind}-{id}"), source, config);
        let entry = Entry {
            built_from: printer,
            hub,
            gop,
        };
        if let Some(old) = hubs.insert(id, entry.clone()) {
            // Settings changed behind our back (another process wrote the
            // database): the old upstream must close before the new opens.
            drop(hubs);
            old.hub.shutdown();
        }
        Ok(entry)
    }

    /// The lease printer `id`'s hubs share, so only one connects at a time.
    pub fn lease(&self, id: i64) -> Arc<Lease> {
        crate::sync::lock(&self.leases)
            .entry(id)
            .or_default()
            .clone()
    }

    /// What printer `id`'s native session found it cannot take, shared by
    /// its hubs.
    pub fn refusal(&self, id: i64) -> Arc<Refusal> {
        crate::sync::lock(&self.refusals)
            .entry(id)
            .or_default()
            .clone()
    }

    /// The certificate trust of printer `p`'s sources: the one its other
    /// sources use while it is for the same address and serial and holds
    /// the pin the registry has, else a new one from `make`. So a hub made
    /// before the other hub pinned a certificate holds to that pin, and a
    /// pin forgotten (or moved away from) is forgotten by both.
    pub fn printer_trust(
        &self,
        p: &Printer,
        make: impl FnOnce() -> Result<Tofu>,
    ) -> Result<Arc<Tofu>> {
        let mut trusts = crate::sync::lock(&self.trusts);
        if let Some((at, tofu)) = trusts.get(&p.id) {
            let same = !moves_printer(at, p) && at.serial == p.serial;
            if same && tofu.pin() == build::stored_pin(p) {
                return Ok(Arc::clone(tofu));
            }
        }
        let tofu = Arc::new(make()?);
        trusts.insert(p.id, (p.clone(), Arc::clone(&tofu)));
        Ok(tofu)
    }

    /// A hub whose settings are known to be unchanged, without touching the
    /// database; for read-only figures.
    fn existing_hub(&self, id: i64) -> Option<Hub> {
        self.lock_hubs().get(&id).map(|e| e.hub.clone())
    }

    fn existing_mp4_hub(&self, id: i64) -> Option<Hub> {
        crate::sync::lock(&self.mp4_hubs)
            .get(&id)
            .map(|e| e.hub.clone())
    }

    /// The latest frame, or one captured now.
    pub fn snapshot(self: &Arc<Self>, id: i64) -> Result<Frame> {
        self.hub(id)?.snapshot(self.settings.snapshot_timeout)
    }

    /// Connects (or uses the live connection) and reports the resolution.
    pub fn test(self: &Arc<Self>, id: i64) -> Result<TestResult> {
        let mut result = self.test_frame(id)?;
        // Read again: the test may have detected the camera.
        let p = self.printer(id)?;
        result.camera = CameraKind::of(&p).as_str();
        result.detected = camera_detected(&p);
        Ok(result)
    }

    fn test_frame(self: &Arc<Self>, id: i64) -> Result<TestResult> {
        let hub = match self.hub(id) {
            Ok(hub) => hub,
            Err(Error::NotFound(m)) => return Err(Error::NotFound(m)),
            Err(e) => return Ok(failed_test(e.message())),
        };
        Ok(match hub.snapshot(self.settings.snapshot_timeout) {
            Ok(frame) => match crate::jpeg::resolution(&frame.jpeg) {
                Some((w, h)) => TestResult {
                    success: true,
                    resolution: Some(format!("{w}x{h}")),
                    error: None,
                    camera: "",
                    detected: false,
                },
                None => failed_test("the camera sent a frame whose size could not be read"),
            },
            Err(e) => failed_test(e.message()),
        })
    }

    /// Ends the printer's streams; returns how many.
    pub fn stop(&self, id: i64) -> Result<usize> {
        self.printer(id)?;
        let mjpeg = self.existing_hub(id).map_or(0, |h| h.stop_viewers());
        Ok(mjpeg + self.existing_mp4_hub(id).map_or(0, |h| h.stop_viewers()))
    }

    /// The hub's figures; an idle camera that was never used has none yet.
    pub fn status(&self, id: i64) -> Result<Option<HubStats>> {
        self.printer(id)?;
        Ok(self.existing_hub(id).map(|h| h.stats()))
    }

    /// The `stream.mp4` hub's figures, if it was used.
    pub fn mp4_status(&self, id: i64) -> Result<Option<HubStats>> {
        self.printer(id)?;
        Ok(self.existing_mp4_hub(id).map(|h| h.stats()))
    }

    /// Closes every upstream and waits for them.
    pub fn shutdown(&self) {
        self.shut_down
            .store(true, std::sync::atomic::Ordering::SeqCst);
        let mut hubs: Vec<Hub> = self.lock_hubs().drain().map(|(_, e)| e.hub).collect();
        hubs.extend(
            crate::sync::lock(&self.mp4_hubs)
                .drain()
                .map(|(_, e)| e.hub),
        );
        for hub in hubs {
            hub.shutdown();
        }
    }

    pub fn hub_config(&self) -> HubConfig {
        HubConfig {
            grace: self.settings.grace,
            ..HubConfig::default()
        }
    }

    /// Stores the certificate a useful connection to `at` (the printer's
    /// settings the hub was built from) showed: as the first pin, or, when a
    /// Bambu CA `verified` it, in place of an earlier one (a re-issued
    /// certificate); never once the printer has moved since.
    pub fn pin_cert(&self, at: &Printer, sha256: &str, verified: bool) {
        let id = at.id;
        match self.registry.get(id) {
            Ok(Some(p))
                if (p.cert_sha256.is_none()
                    || verified
                    || p.cert_sha256.as_deref() == Some(sha256))
                    && !moves_printer(at, &p) =>
            {
                if let Err(e) = self.registry.set_cert_pin(id, Some(sha256), verified) {
                    log::warn!("printer {id}: could not store the certificate pin: {e}");
                } else {
                    log::info!("printer {id}: pinned certificate sha256 {sha256}");
                }
            }
            Ok(_) => {}
            Err(e) => log::warn!("printer {id}: could not store the certificate pin: {e}"),
        }
    }

    /// Stores the camera kind detected for a printer of unknown model at
    /// `at` (the settings the hub was built from), unless the printer has
    /// moved or changed model since.
    pub fn store_detected_camera(&self, at: &Printer, camera: BuiltIn) {
        let id = at.id;
        let failed = |e: Error| log::warn!("printer {id}: could not store the camera kind: {e}");
        match self.registry.get(id) {
            Ok(Some(p)) if !moves_printer(at, &p) && p.model == at.model => {
                if let Err(e) = self.registry.set_detected_camera(id, Some(camera)) {
                    failed(e);
                }
            }
            Ok(_) => {}
            Err(e) => failed(e),
        }
    }

    fn close_hub(&self, id: i64) {
        // First: new settings may make a stream the native client takes,
        // and a hub made while the old ones close must not see the verdict.
        crate::sync::lock(&self.refusals).remove(&id);
        let old = self.lock_hubs().remove(&id);
        let old_mp4 = crate::sync::lock(&self.mp4_hubs).remove(&id);
        for old in [old, old_mp4].into_iter().flatten() {
            old.hub.shutdown();
        }
    }

    fn lock_hubs(&self) -> MutexGuard<'_, HashMap<i64, Entry>> {
        crate::sync::lock(&self.hubs)
    }
}

fn failed_test(why: &str) -> TestResult {
    TestResult {
        success: false,
        resolution: None,
        error: Some(why.to_string()),
        camera: "",
        detected: false,
    }
}

fn refuse_demo(id: i64) -> Result<()> {
    if id == DEMO_ID {
        return Err(Error::Invalid(
            "the demo camera is built in and cannot be changed".into(),
        ));
    }
    Ok(())
}

/// The built-in demo camera, listed first when `--demo` is on.
pub fn demo_printer() -> Printer {
    Printer {
        id: DEMO_ID,
        name: "Demo camera".into(),
        ..Printer::default()
    }
}

/// True when `a` and `b` would be served by the same upstream settings
/// and frames (names and models that do not change the camera do not
/// count; the orientation does, as the hub writes it into every frame). The pin
/// and the detected camera are left out: the source itself stores them on
/// first use, and `forget_cert` and `update` close the hub explicitly.
fn same_camera(a: &Printer, b: &Printer) -> bool {
    configured_kind(a) == configured_kind(b)
        && a.ip == b.ip
        && a.access_code == b.access_code
        && a.camera_port == b.camera_port
        && a.camera_url == b.camera_url
        // The serial decides which certificates a Bambu CA vouches for; the
        // model, how ffmpeg reads the stream (build::quirks).
        && a.serial == b.serial
        && a.model == b.model
        && a.orientation() == b.orientation()
        // Which client reads the stream decides the source itself.
        && a.rtsp_client == b.rtsp_client
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::camera::RtspClient;

    fn rtsp_camera() -> Printer {
        Printer {
            name: "door".into(),
            camera_url: Some("rtsp://10.0.0.9:8554/stream".into()),
            camera_type: Some(CameraType::Rtsp),
            camera_enabled: true,
            ..Printer::default()
        }
    }

    #[test]
    fn a_change_of_rtsp_client_is_another_camera() {
        for a in RtspClient::ALL {
            for b in RtspClient::ALL {
                let of = |rtsp_client| Printer {
                    rtsp_client,
                    ..rtsp_camera()
                };
                assert_eq!(same_camera(&of(a), &of(b)), a == b, "{a} -> {b}");
            }
        }
    }

    #[test]
    fn a_change_of_rtsp_client_closes_the_printers_hubs_and_a_rename_does_not() {
        let registry = Arc::new(Registry::open_in_memory().unwrap());
        let cameras = Cameras::new(registry, Settings::default());
        let id = cameras.add(&rtsp_camera()).unwrap().value;
        let built = |cameras: &Arc<Cameras>| {
            cameras.hub(id).unwrap();
            cameras.mp4_hub(id).unwrap();
        };
        let open = |cameras: &Arc<Cameras>| {
            (
                cameras.existing_hub(id).is_some(),
                cameras.existing_mp4_hub(id).is_some(),
            )
        };
        built(&cameras);
        let renamed = PrinterPatch {
            name: Some("porch".into()),
            ..PrinterPatch::default()
        };
        cameras.update(id, &renamed).unwrap();
        assert_eq!(open(&cameras), (true, true));
        for rtsp_client in [RtspClient::Ffmpeg, RtspClient::Native, RtspClient::Auto] {
            let forced = PrinterPatch {
                rtsp_client: Some(rtsp_client),
                ..PrinterPatch::default()
            };
            let saved = cameras.update(id, &forced).unwrap();
            assert_eq!(saved.value.rtsp_client, rtsp_client);
            assert_eq!(open(&cameras), (false, false), "{rtsp_client}");
            built(&cameras);
        }
        cameras.shutdown();
    }
}
