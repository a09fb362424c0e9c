//! `GET /metrics`: the cameras' and the server's figures in Prometheus's
//! text format (version 0.0.4), and the process's own, as every exporter
//! names them.

use crate::cameras::Cameras;
use crate::hub::{HubStats, UpstreamState};
use crate::registry::Printer;
use std::fmt::Write;
use std::sync::atomic::{AtomicUsize, Ordering};

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// Requests and connections turned away, by reason. `usize`, not `u64`:
/// 32-bit MIPS routers have no 64-bit atomics (a counter that wraps after
/// four billion refusals is still a Prometheus counter, reset).
#[derive(Default)]
pub struct Refusals {
    /// The server's connection places were all taken.
    pub connections: AtomicUsize,
    /// The client's address held its share of them.
    pub client: AtomicUsize,
    /// Missing or wrong token (401).
    pub auth: AtomicUsize,
    /// A change refused without a token (403).
    pub forbidden: AtomicUsize,
}

impl Refusals {
    /// Counts an access refusal by its status.
    pub fn count(&self, status: u16) {
        match status {
            401 => self.auth.fetch_add(1, Ordering::Relaxed),
            403 => self.forbidden.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
    }
}

/// What the server knows of itself.
pub struct ServerFigures<'a> {
    pub open_connections: usize,
    pub refusals: &'a Refusals,
    /// Streams refused by the viewer limits.
    pub viewers_refused: usize,
}

/// The whole exposition.
pub fn render(cameras: &Cameras, server: &ServerFigures) -> Result<String, crate::error::Error> {
    let mut out = String::new();
    let printers = cameras.printers()?;
    let of = |status: fn(&Cameras, i64) -> crate::error::Result<Option<HubStats>>| {
        let figures: Vec<(&Printer, Option<HubStats>)> = printers
            .iter()
            .map(|p| (p, status(cameras, p.id).ok().flatten()))
            .collect();
        figures
    };
    camera_metrics(&mut out, MJPEG, &of(Cameras::status));
    camera_metrics(&mut out, MP4, &of(Cameras::mp4_status));
    server_metrics(&mut out, server);
    process_metrics(&mut out);
    Ok(out)
}

type Figure = fn(&HubStats) -> Option<f64>;

/// One of a camera's two hubs, as its series are named: (prefix, what the
/// help says first).
type HubKind = (&'static str, &'static str);
/// The MJPEG hub (streams, snapshots): `printcam_camera_viewers`, …
const MJPEG: HubKind = ("printcam_camera_", "");
/// The `stream.mp4` hub, beside it: `printcam_camera_mp4_viewers`, … (a
/// label on the first would have changed their existing series).
const MP4: HubKind = ("printcam_camera_mp4_", "stream.mp4: ");

/// Per camera: (name after the prefix, type, help, value of the hub's
/// figures). A camera nobody has used yet has no hub: its figures are zero.
const CAMERA_FIGURES: &[(&str, &str, &str, Figure)] = &[
    ("viewers", "gauge", "Streams open of this camera.", |s| {
        Some(s.viewers as f64)
    }),
    (
        "frames_in_total",
        "counter",
        "Frames received from the camera.",
        |s| Some(s.frames_in as f64),
    ),
    (
        "frames_out_total",
        "counter",
        "Frames sent to viewers.",
        |s| Some(s.frames_out as f64),
    ),
    (
        "frames_dropped_total",
        "counter",
        "Frames viewers missed because they were behind.",
        |s| Some(s.frames_dropped as f64),
    ),
    (
        "upstream_up",
        "gauge",
        "1 while the camera is connected and sending frames.",
        |s| Some(f64::from(u8::from(s.state == UpstreamState::Live))),
    ),
    (
        "connects_total",
        "counter",
        "Connections opened to the camera.",
        |s| Some(s.connects as f64),
    ),
    (
        "reconnects_total",
        "counter",
        "Connections opened to the camera after a failure.",
        |s| Some(s.reconnects as f64),
    ),
    (
        "last_frame_age_seconds",
        "gauge",
        "Age of the camera's latest frame (absent before the first).",
        |s| s.last_frame_age_ms.map(|ms| ms as f64 / 1000.0),
    ),
];

fn camera_metrics(
    out: &mut String,
    (prefix, about): HubKind,
    figures: &[(&Printer, Option<HubStats>)],
) {
    for (suffix, kind, help, value) in CAMERA_FIGURES {
        let name = &format!("{prefix}{suffix}");
        header(out, name, kind, &format!("{about}{help}"));
        for (p, stats) in figures {
            let v = match stats {
                Some(s) => value(s),
                // Never used: nothing in, nothing out, no frame to age.
                None if name.ends_with("_age_seconds") => None,
                None => Some(0.0),
            };
            if let Some(v) = v {
                let labels = format!("id=\"{}\",name=\"{}\"", p.id, label(&p.name));
                sample(out, name, &labels, v);
            }
        }
    }
}

fn server_metrics(out: &mut String, server: &ServerFigures) {
    header(
        out,
        "printcam_http_open_connections",
        "gauge",
        "Connections being served, open streams included.",
    );
    sample(
        out,
        "printcam_http_open_connections",
        "",
        server.open_connections as f64,
    );
    header(
        out,
        "printcam_http_refused_total",
        "counter",
        "Connections and requests turned away, by reason.",
    );
    let r = server.refusals;
    let load = |a: &AtomicUsize| a.load(Ordering::Relaxed) as f64;
    for (reason, n) in [
        ("connections", load(&r.connections)),
        ("client_connections", load(&r.client)),
        ("viewers", server.viewers_refused as f64),
        ("auth", load(&r.auth)),
        ("forbidden", load(&r.forbidden)),
    ] {
        sample(
            out,
            "printcam_http_refused_total",
            &format!("reason=\"{reason}\""),
            n,
        );
    }
}

fn process_metrics(out: &mut String) {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let field = |name: &str| -> Option<f64> {
        let line = status.lines().find_map(|l| l.strip_prefix(name))?;
        line.split_whitespace().next()?.parse().ok()
    };
    if let Some(kb) = field("VmRSS:") {
        header(
            out,
            "process_resident_memory_bytes",
            "gauge",
            "Resident memory size in bytes.",
        );
        sample(out, "process_resident_memory_bytes", "", kb * 1024.0);
    }
    if let Some(secs) = cpu_seconds() {
        header(
            out,
            "process_cpu_seconds_total",
            "counter",
            "Total user and system CPU time spent in seconds.",
        );
        sample(out, "process_cpu_seconds_total", "", secs);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        header(
            out,
            "process_open_fds",
            "gauge",
            "Number of open file descriptors.",
        );
        sample(out, "process_open_fds", "", fds.count() as f64);
    }
    if let Some(n) = field("Threads:") {
        header(
            out,
            "process_threads",
            "gauge",
            "Number of OS threads in the process.",
        );
        sample(out, "process_threads", "", n);
    }
}

/// utime + stime of this process, from /proc/self/stat.
fn cpu_seconds() -> Option<f64> {
    let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
    // The command name may hold spaces: fields are counted after its `)`.
    let after = &stat[stat.rfind(')')? + 1..];
    let mut fields = after.split_whitespace();
    let utime: f64 = fields.nth(11)?.parse().ok()?;
    let stime: f64 = fields.next()?.parse().ok()?;
    // SAFETY: sysconf has no memory effects.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    (ticks > 0).then(|| (utime + stime) / ticks as f64)
}

fn header(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
}

fn sample(out: &mut String, name: &str, labels: &str, value: f64) {
    if labels.is_empty() {
        let _ = writeln!(out, "{name} {value}");
    } else {
        let _ = writeln!(out, "{name}{{{labels}}} {value}");
    }
}

/// A label value as the format wants it: `\`, `"` and newlines escaped.
fn label(v: &str) -> String {
    let mut out = String::with_capacity(v.len());
    for c in v.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(label(r#"a"b\c"#), r#"a\"b\\c"#);
        assert_eq!(label("two\nlines"), "two\\nlines");
    }

    #[test]
    fn samples_and_headers_follow_the_text_format() {
        let mut out = String::new();
        header(&mut out, "x_total", "counter", "Some things.");
        sample(&mut out, "x_total", "id=\"1\"", 3.0);
        sample(&mut out, "y", "", 0.5);
        assert_eq!(
            out,
            "# HELP x_total Some things.\n# TYPE x_total counter\nx_total{id=\"1\"} 3\ny 0.5\n"
        );
    }

    #[test]
    fn mp4_figures_are_series_of_their_own_beside_the_mjpeg_ones() {
        let p = Printer {
            id: 3,
            name: "x1c".into(),
            ..Printer::default()
        };
        let stats = HubStats {
            state: UpstreamState::Live,
            viewers: 2,
            frames_in: 40,
            frames_out: 80,
            frames_dropped: 0,
            frames_skipped: 0,
            tls_version: None,
            decoding: None,
            last_frame_age_ms: Some(20),
            connects: 1,
            reconnects: 0,
            last_error: None,
            viewer_stats: Vec::new(),
        };
        let mut out = String::new();
        camera_metrics(&mut out, MJPEG, &[(&p, None)]);
        camera_metrics(&mut out, MP4, &[(&p, Some(stats))]);
        for line in [
            "printcam_camera_viewers{id=\"3\",name=\"x1c\"} 0\n",
            "printcam_camera_mp4_viewers{id=\"3\",name=\"x1c\"} 2\n",
            "printcam_camera_mp4_frames_out_total{id=\"3\",name=\"x1c\"} 80\n",
            "printcam_camera_mp4_upstream_up{id=\"3\",name=\"x1c\"} 1\n",
            "# TYPE printcam_camera_mp4_viewers gauge\n",
            "# HELP printcam_camera_mp4_viewers stream.mp4: Streams open of this camera.\n",
        ] {
            assert!(out.contains(line), "{line} missing in {out}");
        }
        // A hub never used has no frame to age, on either side.
        assert!(
            !out.contains("printcam_camera_last_frame_age_seconds{"),
            "{out}"
        );
    }

    #[test]
    fn this_process_has_figures() {
        let mut out = String::new();
        process_metrics(&mut out);
        for name in [
            "process_resident_memory_bytes ",
            "process_cpu_seconds_total ",
            "process_open_fds ",
            "process_threads ",
        ] {
            assert!(out.contains(name), "{name} missing in {out}");
        }
    }
}
