//! The viewing page: every printer with its live stream and a snapshot link.

use crate::cameras::CameraKind;
use crate::registry::Printer;

/// Low enough that a page of several cameras does not flood a small box.
const PAGE_FPS: u32 = 5;

/// A self-contained HTML page (no scripts, no external resources).
/// `token`, when given, is the one the viewer opened the page with: its
/// links carry it so the streams load where a token is required.
pub fn render(printers: &[Printer], token: Option<&str>) -> String {
    let auth = token.map_or(String::new(), |t| {
        let q: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("token", t)
            .finish();
        escape(&q)
    });
    let mut cards = String::new();
    for p in printers {
        cards.push_str(&card(p, &auth));
    }
    if printers.is_empty() {
        cards.push_str("<p>No printers yet. Add one with <code>printcam printer add</code> or <code>POST /printers</code>.</p>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
         <meta name=\"referrer\" content=\"no-referrer\">\
         <title>printcam</title><style>{STYLE}</style></head>\
         <body><h1>printcam</h1><div class=\"grid\">{cards}</div></body></html>\n"
    )
}

const STYLE: &str = "body{font-family:sans-serif;margin:1em;background:#111;color:#eee}\
    .grid{display:flex;flex-wrap:wrap;gap:1em}\
    .card{background:#222;padding:.5em;border-radius:6px;width:min(100%,640px)}\
    .card img{width:100%;background:#000;aspect-ratio:16/9}\
    a{color:#8cf}";

/// `auth` (`token=…`, escaped, or empty) goes into every link's query.
fn card(p: &Printer, auth: &str) -> String {
    let then = |sep: &str| {
        if auth.is_empty() {
            String::new()
        } else {
            format!("{sep}{auth}")
        }
    };
    let (and_auth, only_auth) = (then("&amp;"), then("?"));
    let name = escape(&p.name);
    let kind = CameraKind::of(p);
    let id = p.id;
    let body = if kind == CameraKind::None {
        "<p>No camera configured.</p>".to_string()
    } else {
        format!(
            "<img src=\"/printers/{id}/camera/stream?fps={PAGE_FPS}{and_auth}\" alt=\"{name} camera\">\
             <p><a href=\"/printers/{id}/camera/snapshot{only_auth}\">snapshot</a> · \
             <a href=\"/printers/{id}/camera/status{only_auth}\">status</a></p>"
        )
    };
    format!(
        "<div class=\"card\"><h2>{name} <small>({})</small></h2>{body}</div>",
        kind.as_str()
    )
}

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

    #[test]
    fn names_are_escaped() {
        let p = Printer {
            id: 3,
            name: "<script>alert(\"x\")</script>&'".into(),
            ip: Some("10.0.0.2".into()),
            ..Printer::default()
        };
        let html = render(&[p], None);
        assert!(!html.contains("<script>"), "{html}");
        assert!(html.contains("&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&amp;&#39;"));
        assert!(html.contains("/printers/3/camera/stream?fps=5"));
    }

    #[test]
    fn a_printer_without_camera_has_no_stream() {
        let p = Printer {
            id: 1,
            name: "bare".into(),
            ..Printer::default()
        };
        let html = render(&[p], None);
        assert!(!html.contains("<img"));
        assert!(render(&[], None).contains("No printers yet"));
    }

    #[test]
    fn links_carry_the_viewers_token() {
        let p = Printer {
            id: 2,
            name: "cam".into(),
            ip: Some("10.0.0.2".into()),
            ..Printer::default()
        };
        let html = render(&[p], Some("a&b\"c"));
        assert!(
            html.contains("/printers/2/camera/stream?fps=5&amp;token=a%26b%22c\""),
            "{html}"
        );
        assert!(html.contains("/printers/2/camera/snapshot?token=a%26b%22c\""));
        // The token in the page's own address must not travel on in a Referer.
        assert!(html.contains("<meta name=\"referrer\" content=\"no-referrer\">"));
    }
}
