//! The viewing page: a wall of every camera with its state, and one camera
//! at full rate when a tile is opened. An H.264 camera plays in a
//! `<video>` (`stream.mp4`, or HLS where the browser plays it: Safari);
//! the others are snapshots renewed every few seconds.
//!
//! JPEG tiles are snapshots, not streams: a browser opens at most six
//! HTTP/1.1 connections to one host, so a wall of live MJPEG `<img>`s
//! leaves every camera past the sixth blank. A snapshot holds a connection
//! only while it loads. A `stream.mp4` holds one while it plays, so the
//! script plays a few at once and shows the other H.264 cameras as
//! snapshots; HLS fetches short segments and has no such limit.

use crate::camera::Video;
use crate::cameras::CameraKind;
use crate::hub::HubStats;
use crate::registry::Printer;

/// The full-rate view's frame rate.
const VIEW_FPS: u32 = 15;

/// What a tile shows before its script has asked anything.
pub struct Tile<'a> {
    pub printer: &'a Printer,
    pub stats: Option<HubStats>,
}

/// The wall of every camera. `token`, when given, is the one the viewer
/// opened the page with: its links carry it so the pictures load where a
/// token is required.
pub fn wall(tiles: &[Tile], token: Option<&str>) -> String {
    let auth = Auth::new(token);
    let mut body = String::new();
    for t in tiles {
        body.push_str(&tile(t, &auth));
    }
    if tiles.is_empty() {
        body.push_str(
            "<p>No printers yet. Add one with <code>printcam printer add</code> or \
             <code>POST /printers</code>.</p>",
        );
    }
    document(
        "printcam",
        &format!(
            "<h1>printcam</h1><div class=\"wall\">{body}</div><script src=\"/page.js\"></script>"
        ),
    )
}

/// One camera at full rate, with a way back to the wall.
pub fn view(printer: &Printer, token: Option<&str>) -> String {
    let auth = Auth::new(token);
    let name = escape(&printer.name);
    let id = printer.id;
    let stream = format!("/printers/{id}/camera/stream?fps={VIEW_FPS}");
    let picture = match CameraKind::of(printer).video() {
        None => None,
        // The script plays it, or falls back to the MJPEG stream.
        Some(Video::H264) => Some(format!(
            "{}<script src=\"/page.js\"></script>",
            video_element("view", id, &name, Some(&stream))
        )),
        Some(Video::Mjpeg) => Some(format!(
            "<img class=\"view\" src=\"{stream}{}\" alt=\"{name} camera\">\
             <div class=\"how\">MJPEG</div>",
            auth.and()
        )),
    };
    let body = match picture {
        None => "<p>No camera configured.</p>".to_string(),
        Some(picture) => format!(
            "<div class=\"screen\">{picture}</div>\
             <p><a href=\"/printers/{id}/camera/snapshot{}\">snapshot</a> · \
             <a href=\"/printers/{id}/camera/status{}\">status</a></p>",
            auth.only(),
            auth.only()
        ),
    };
    document(
        &format!("{name} · printcam"),
        &format!(
            "<p><a href=\"/{}\">← all cameras</a></p><h1>{name} <small>({})</small></h1>{body}",
            auth.only(),
            CameraKind::of(printer).as_str()
        ),
    )
}

/// The token as a query part, escaped for HTML attributes.
struct Auth(String);

impl Auth {
    fn new(token: Option<&str>) -> Auth {
        Auth(token.map_or(String::new(), |t| {
            let q: String = url::form_urlencoded::Serializer::new(String::new())
                .append_pair("token", t)
                .finish();
            escape(&q)
        }))
    }

    /// `&token=…` to follow other parameters, or nothing.
    fn and(&self) -> String {
        self.with("&amp;")
    }

    /// `?token=…` as the whole query, or nothing.
    fn only(&self) -> String {
        self.with("?")
    }

    fn with(&self, sep: &str) -> String {
        if self.0.is_empty() {
            String::new()
        } else {
            format!("{sep}{}", self.0)
        }
    }
}

fn document(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>{title}</title><style>{STYLE}</style></head><body>{body}</body></html>\n"
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:.8em;background:#111;color:#eee}\
    h1{font-size:1.3em;margin:.2em 0 .6em}\
    .wall{display:grid;gap:.8em;grid-template-columns:repeat(auto-fill,minmax(min(100%,300px),1fr))}\
    .tile{display:block;position:relative;background:#222;border-radius:6px;padding:.4em;color:inherit;text-decoration:none}\
    .tile img,.tile video{display:block;width:100%;aspect-ratio:16/9;object-fit:contain;background:#000}\
    .screen{position:relative;max-width:1280px}\
    .how{position:absolute;top:.6em;left:.6em;max-width:85%;font-size:.75em;padding:.1em .45em;\
    border-radius:3px;background:rgba(0,0,0,.7);color:#fff;pointer-events:none}\
    .tile .name{font-weight:bold;margin:.3em 0 .1em}\
    .state{font-size:.85em;color:#aaa}\
    .live{color:#6d6}.retrying,.connecting{color:#db5}.failed{color:#e66}\
    .view{width:100%;max-width:1280px;background:#000}\
    a{color:#8cf}";

fn tile(t: &Tile, auth: &Auth) -> String {
    let p = t.printer;
    let name = escape(&p.name);
    let kind = CameraKind::of(p);
    let id = p.id;
    if kind == CameraKind::None {
        return format!(
            "<div class=\"tile\"><div class=\"name\">{name}</div>\
             <div class=\"state\">no camera configured</div></div>"
        );
    }
    let (state, line) = state_line(t.stats.as_ref());
    let picture = if kind.video() == Some(Video::H264) {
        video_element("", id, &name, None)
    } else {
        format!(
            "<img data-id=\"{id}\" src=\"/printers/{id}/camera/snapshot{}\" alt=\"{name} camera\">\
             <div class=\"how\" data-how=\"{id}\">MJPEG</div>",
            auth.only()
        )
    };
    format!(
        "<a class=\"tile\" href=\"/?camera={id}{and}\">{picture}\
         <div class=\"name\">{name} <small>({kind})</small></div>\
         <div class=\"state {state}\" data-state=\"{id}\">{line}</div></a>",
        and = auth.and(),
        kind = kind.as_str()
    )
}

/// An H.264 camera's `<video>` and its label, for the script to give a
/// source (it alone can ask the browser which one it plays). `fallback`
/// is the MJPEG stream to show if the video fails; without one, the
/// snapshot renewed as JPEG tiles are.
fn video_element(class: &str, id: i64, name: &str, fallback: Option<&str>) -> String {
    let fallback = fallback.map_or(String::new(), |f| {
        format!(" data-fallback=\"{}\"", escape(f))
    });
    format!(
        "<video class=\"{class}\" data-video=\"{id}\"{fallback} muted autoplay playsinline \
         aria-label=\"{name} camera\"></video><div class=\"how\" data-how=\"{id}\">H.264</div>"
    )
}

/// The state's class and its line: "live · 2 viewers", "failed: why".
fn state_line(stats: Option<&HubStats>) -> (&'static str, String) {
    let Some(s) = stats else {
        return ("idle", "idle".into());
    };
    let state = s.state.as_str();
    let mut line = state.to_string();
    if let (Some(why), "retrying" | "failed") = (&s.last_error, state) {
        line.push_str(": ");
        line.push_str(&escape(&crate::redact::url_passwords(why)));
    }
    line.push_str(&format!(
        " · {} viewer{}",
        s.viewers,
        if s.viewers == 1 { "" } else { "s" }
    ));
    (state, line)
}

/// The page's script: plays H.264 cameras in their `<video>`, and renews
/// each JPEG tile's snapshot and every tile's state every few seconds, one
/// request per tile at a time, with the page's own token.
pub const SCRIPT: &str = r#""use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
const EVERY_MS = 3000;
// A stream.mp4 holds one of the six connections a browser opens to printcam
// for as long as it plays; the rest are left for snapshots and states.
const MP4_AT_ONCE = 4;
// Longer than printcam waits for a camera's first frame (the snapshot
// timeout, 10 s by default) before it answers with an error.
const NO_PICTURE_MS = 20000;
// Safari and iPhones play HLS, and not an endless MP4 (Chromium plays
// both); ?video=mp4 or ?video=hls chooses.
const ASKED = new URLSearchParams(location.search).get("video");
const HLS = ASKED ? ASKED === "hls"
  : document.createElement("video").canPlayType("application/vnd.apple.mpegurl") !== "";
const MEDIA_ERRORS = {1: "aborted", 2: "network error", 3: "cannot decode", 4: "not playable"};
const seen = new Map();
let mp4Playing = 0;
function mediaError(e) {
  if (!e) return "error";
  const name = MEDIA_ERRORS[e.code] || "error " + e.code;
  return e.message ? name + ": " + e.message : name;
}
function label(id, text) {
  const el = document.querySelector('[data-how="' + id + '"]');
  if (el) el.textContent = text;
}
function renewPicture(img) {
  const next = new Image();
  next.onload = () => {
    img.src = next.src;
    img.dataset.shown = next.naturalWidth + "x" + next.naturalHeight;
  };
  next.src = withToken("/printers/" + img.dataset.id + "/camera/snapshot?t=" + Date.now());
}
// The video gives way to JPEG pictures: the MJPEG stream where one is named
// (the one-camera view), else snapshots renewed as the other tiles' are.
function toPictures(video, why) {
  const id = video.dataset.video;
  video.removeAttribute("src");
  video.load();
  const img = document.createElement("img");
  img.className = video.className;
  img.alt = video.getAttribute("aria-label") || "";
  if (video.dataset.fallback) {
    img.src = withToken(video.dataset.fallback);
  } else {
    img.dataset.id = id;
    renewPicture(img);
  }
  video.replaceWith(img);
  label(id, "MJPEG · " + why);
}
// Why printcam's MP4 side failed, when it says (a video element cannot
// read the JSON of an error answer).
async function serverReason(id) {
  try {
    const r = await fetch(withToken("/printers/" + id + "/camera/status"), {cache: "no-store"});
    const s = await r.json();
    return s.mp4 && s.mp4.last_error ? ": " + s.mp4.last_error : "";
  } catch (e) {
    return "";
  }
}
function playVideo(video) {
  const id = video.dataset.video;
  if (!HLS && mp4Playing >= MP4_AT_ONCE) {
    toPictures(video, "H.264 shown as snapshots (" + MP4_AT_ONCE + " videos play at once)");
    return;
  }
  const how = "H.264 · " + (HLS ? "HLS" : "MP4");
  if (!HLS) mp4Playing++;
  let shown = false, done = false, timer = 0;
  const start = () => {
    shown = false;
    clearTimeout(timer);
    timer = setTimeout(() => shown || fail("no picture in " + NO_PICTURE_MS / 1000 + " s"), NO_PICTURE_MS);
    video.src = withToken("/printers/" + id + "/camera/stream." + (HLS ? "m3u8" : "mp4"));
  };
  const fail = async (why) => {
    if (done) return;
    done = true;
    clearTimeout(timer);
    if (!HLS) mp4Playing--;
    toPictures(video, "H.264 video failed (" + why + ")" + await serverReason(id));
  };
  // A stream that showed pictures and stopped (printcam restarted, the
  // picture size changed) starts again; one that never did gives way.
  const stopped = (why) => done || (shown ? start() : fail(why));
  video.addEventListener("loadeddata", () => {
    shown = true;
    video.dataset.shown = video.videoWidth + "x" + video.videoHeight;
    label(id, how);
  });
  video.addEventListener("error", () => stopped(mediaError(video.error)));
  video.addEventListener("ended", () => stopped("the stream ended"));
  video.muted = true;
  label(id, how + " · starting");
  start();
}
async function renewState(el) {
  const id = el.dataset.state;
  try {
    const r = await fetch(withToken("/printers/" + id + "/camera/status"), {cache: "no-store"});
    const all = await r.json();
    // A playing video's figures are those of the camera's MP4 side.
    const video = document.querySelector('video[data-video="' + id + '"]') !== null;
    const s = video && all.mp4 ? all.mp4 : all;
    const key = id + (s === all ? "" : ".mp4");
    const now = Date.now();
    const before = seen.get(key);
    seen.set(key, {frames: s.frames_in, at: now});
    let line = s.state;
    if ((s.state === "retrying" || s.state === "failed") && s.last_error) line += ": " + s.last_error;
    if (before && s.state === "live") {
      const fps = (s.frames_in - before.frames) * 1000 / (now - before.at);
      line += " · " + fps.toFixed(1) + " fps";
    }
    line += " · " + s.viewers + (s.viewers === 1 ? " viewer" : " viewers");
    el.textContent = line;
    el.className = "state " + s.state;
  } catch (e) {
    el.textContent = "no answer from printcam";
    el.className = "state failed";
  }
}
function renewAll() {
  document.querySelectorAll("img[data-id]").forEach(renewPicture);
  document.querySelectorAll("[data-state]").forEach(renewState);
}
document.querySelectorAll("video[data-video]").forEach(playVideo);
setInterval(renewAll, EVERY_MS);
renewAll();
"#;

/// Text safe inside HTML elements and double-quoted attributes.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn printer(id: i64, name: &str) -> Printer {
        Printer {
            id,
            name: name.into(),
            ip: Some("10.0.0.2".into()),
            access_code: Some("12345678".into()),
            ..Printer::default()
        }
    }

    fn wall_of(printers: &[Printer], token: Option<&str>) -> String {
        let tiles: Vec<Tile> = printers
            .iter()
            .map(|printer| Tile {
                printer,
                stats: None,
            })
            .collect();
        wall(&tiles, token)
    }

    #[test]
    fn names_are_escaped() {
        let html = wall_of(&[printer(3, "<script>alert(\"x\")</script>&'")], None);
        assert!(!html.contains("<script>alert"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        let html = view(&printer(3, "<b>"), None);
        assert!(!html.contains("<b>"), "{html}");
    }

    #[test]
    fn tiles_are_snapshots_and_the_view_streams() {
        let html = wall_of(&[printer(3, "a"), printer(4, "b")], None);
        assert!(
            html.contains("src=\"/printers/3/camera/snapshot\""),
            "{html}"
        );
        assert!(html.contains("href=\"/?camera=4\""), "{html}");
        assert!(
            !html.contains("/camera/stream"),
            "a wall of streams: {html}"
        );
        let one = view(&printer(3, "a"), None);
        assert!(one.contains("/printers/3/camera/stream?fps=15\""), "{one}");
    }

    #[test]
    fn an_h264_camera_is_a_video_for_the_script_and_the_others_pictures() {
        let rtsp = Printer {
            id: 5,
            name: "door".into(),
            camera_url: Some("rtsp://10.0.0.5/live".into()),
            camera_type: Some(crate::camera::CameraType::Rtsp),
            camera_enabled: true,
            ..Printer::default()
        };
        let html = wall_of(&[rtsp.clone(), printer(3, "a")], Some("t"));
        assert!(
            html.contains(
                "<video class=\"\" data-video=\"5\" muted autoplay playsinline \
                 aria-label=\"door camera\"></video><div class=\"how\" data-how=\"5\">H.264</div>"
            ),
            "{html}"
        );
        // Its snapshot would take the camera from the video (one client).
        assert!(!html.contains("/printers/5/camera/snapshot"), "{html}");
        assert!(html.contains("<div class=\"how\" data-how=\"3\">MJPEG</div>"));
        let one = view(&rtsp, Some("t"));
        assert!(
            one.contains("data-video=\"5\" data-fallback=\"/printers/5/camera/stream?fps=15\""),
            "{one}"
        );
        assert!(one.contains("<script src=\"/page.js\">"), "{one}");
        assert!(!one.contains("<img"), "{one}");
    }

    #[test]
    fn a_printer_without_camera_has_no_picture() {
        let bare = Printer {
            id: 1,
            name: "bare".into(),
            ..Printer::default()
        };
        let html = wall_of(std::slice::from_ref(&bare), None);
        assert!(!html.contains("<img"));
        assert!(html.contains("no camera configured"));
        assert!(!view(&bare, None).contains("<img"));
        assert!(wall_of(&[], None).contains("No printers yet"));
    }

    #[test]
    fn links_carry_the_viewers_token() {
        let html = wall_of(&[printer(2, "cam")], Some("a&b\"c"));
        assert!(
            html.contains("/printers/2/camera/snapshot?token=a%26b%22c\""),
            "{html}"
        );
        assert!(
            html.contains("href=\"/?camera=2&amp;token=a%26b%22c\""),
            "{html}"
        );
        let one = view(&printer(2, "cam"), Some("t"));
        assert!(
            one.contains("/printers/2/camera/stream?fps=15&amp;token=t\""),
            "{one}"
        );
        assert!(one.contains("href=\"/?token=t\""), "{one}");
        // The token in the page's own address must not travel on in a Referer.
        assert!(html.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
    }
}
