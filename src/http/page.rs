//! The viewing page: a wall of every camera, each tile a snapshot renewed
//! every few seconds with its state, and one camera at full rate when a
//! tile is opened.
//!
//! Tiles are snapshots, not streams: a browser opens at most six HTTP/1.1
//! connections to one host, so a wall of live MJPEG `<img>`s leaves every
//! camera past the sixth blank. A snapshot holds a connection only while
//! it loads.

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
    let body = if CameraKind::of(printer) == CameraKind::None {
        "<p>No camera configured.</p>".to_string()
    } else {
        format!(
            "<img class=\"view\" src=\"/printers/{id}/camera/stream?fps={VIEW_FPS}{}\" alt=\"{name} camera\">\
             <p><a href=\"/printers/{id}/camera/snapshot{}\">snapshot</a> · \
             <a href=\"/printers/{id}/camera/status{}\">status</a></p>",
            auth.and(),
            auth.only(),
            auth.only()
        )
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
    .tile{display:block;background:#222;border-radius:6px;padding:.4em;color:inherit;text-decoration:none}\
    .tile img{display:block;width:100%;aspect-ratio:16/9;object-fit:contain;background:#000}\
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
    format!(
        "<a class=\"tile\" href=\"/?camera={id}{and}\">\
         <img data-id=\"{id}\" src=\"/printers/{id}/camera/snapshot{only}\" alt=\"{name} camera\">\
         <div class=\"name\">{name} <small>({kind})</small></div>\
         <div class=\"state {state}\" data-state=\"{id}\">{line}</div></a>",
        and = auth.and(),
        only = auth.only(),
        kind = kind.as_str()
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

/// The wall's script: renews each tile's snapshot and state every few
/// seconds, one request per tile at a time, with the page's own token.
pub const SCRIPT: &str = r#""use strict";
const token = new URLSearchParams(location.search).get("token");
const withToken = (path) => token ? path + (path.includes("?") ? "&" : "?") + "token=" + encodeURIComponent(token) : path;
const EVERY_MS = 3000;
const seen = new Map();
function renewPicture(img) {
  const next = new Image();
  next.onload = () => {
    img.src = next.src;
    img.dataset.shown = next.naturalWidth + "x" + next.naturalHeight;
  };
  next.src = withToken("/printers/" + img.dataset.id + "/camera/snapshot?t=" + Date.now());
}
async function renewState(el) {
  const id = el.dataset.state;
  try {
    const r = await fetch(withToken("/printers/" + id + "/camera/status"), {cache: "no-store"});
    const s = await r.json();
    const now = Date.now();
    const before = seen.get(id);
    seen.set(id, {frames: s.frames_in, at: now});
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
