//! From method and path to what the request asks for. Every path is served
//! both at the root and under `/api/v1`.

use super::reply::Reply;
use super::request::Method;

/// What a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Page,
    /// The page's script: static code, served without the token.
    PageScript,
    Health,
    UsbCameras,
    ListPrinters,
    CreatePrinter,
    GetPrinter(i64),
    UpdatePrinter(i64),
    DeletePrinter(i64),
    ForgetCert(i64),
    Stream(i64),
    /// `camera/stream.mp4`: H.264 as fragmented MP4, for `<video>`.
    StreamMp4(i64),
    /// `camera/stream.m3u8`: the HLS playlist of the same H.264.
    Hls(i64),
    /// `camera/hls/init.mp4`: the init segment the playlist names.
    HlsInit(i64),
    /// `camera/hls/N.m4s`: segment N of the playlist.
    HlsSegment(i64, u64),
    /// go2rtc's `/api/stream.m3u8?src=…`: sent on to the camera's playlist,
    /// whose segment URIs are relative to it.
    HlsOf(i64),
    Snapshot(i64),
    Test(i64),
    Status(i64),
    Stop(i64),
    Metrics,
    /// go2rtc's forms (`/api/stream.mjpeg?src=…`, `/api/frame.jpeg?src=…`):
    /// the camera is named by the `src` query parameter, a printer's id
    /// or name, which only the registry can resolve.
    BySource(SourceAction),
}

/// What a go2rtc-style URL asks of the camera its `src` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceAction {
    Stream,
    Snapshot,
    Mp4,
    Hls,
}

impl SourceAction {
    /// The route for printer `id`.
    pub fn route(self, id: i64) -> Route {
        match self {
            SourceAction::Stream => Route::Stream(id),
            SourceAction::Snapshot => Route::Snapshot(id),
            SourceAction::Mp4 => Route::StreamMp4(id),
            SourceAction::Hls => Route::HlsOf(id),
        }
    }
}

const API_PREFIX: &str = "/api/v1";
/// Long enough for any real id, short enough to quote in an error.
const MAX_QUOTED: usize = 40;

/// Splits a request target into path and query (without the `?`).
pub fn split_target(target: &str) -> (&str, &str) {
    match target.split_once('?') {
        Some((path, query)) => (path, query),
        None => (target, ""),
    }
}

/// The route for `method`, `path` and `query`, or the error reply: 404 for
/// an unknown path, 405 for a known path with another method, 400 for an id
/// that is not a whole number. The query matters only for the URL forms of
/// other tools (`?action=` of mjpg-streamer); other parameters are ignored.
pub fn route(method: &Method, path: &str, query: &str) -> Result<Route, Reply> {
    let path = strip_prefix(path);
    let path = if path.len() > 1 {
        path.strip_suffix('/').unwrap_or(path)
    } else {
        path
    };
    let segments: Vec<&str> = path.split('/').skip(1).collect();
    let m = method;
    match segments.as_slice() {
        [""] => only_get(m, Route::Page),
        ["page.js"] => only_get(m, Route::PageScript),
        ["healthz"] => only_get(m, Route::Health),
        ["metrics"] => only_get(m, Route::Metrics),
        ["api", "stream.mjpeg"] => only_get(m, Route::BySource(SourceAction::Stream)),
        ["api", "frame.jpeg"] => only_get(m, Route::BySource(SourceAction::Snapshot)),
        ["api", "stream.mp4"] => only_get(m, Route::BySource(SourceAction::Mp4)),
        ["api", "stream.m3u8"] => only_get(m, Route::BySource(SourceAction::Hls)),
        ["usb-cameras"] => only_get(m, Route::UsbCameras),
        ["printers"] => match m {
            Method::Get => Ok(Route::ListPrinters),
            Method::Post => Ok(Route::CreatePrinter),
            _ => Err(Reply::method_not_allowed("GET POST")),
        },
        // mjpg-streamer's `?action=stream|snapshot`, as Mainsail, Fluidd,
        // OctoPrint and crowsnest users paste it.
        ["printers", id] if *m == Method::Get && mjpg_streamer_action(query).is_some() => {
            let id = parse_id(id)?;
            Ok(match mjpg_streamer_action(query) {
                Some(SourceAction::Snapshot) => Route::Snapshot(id),
                _ => Route::Stream(id),
            })
        }
        ["printers", id] => {
            let make = match m {
                Method::Get => Route::GetPrinter,
                Method::Patch | Method::Put => Route::UpdatePrinter,
                Method::Delete => Route::DeletePrinter,
                _ => return Err(Reply::method_not_allowed("GET PATCH PUT DELETE")),
            };
            Ok(make(parse_id(id)?))
        }
        ["printers", id, "forget-cert"] => match m {
            Method::Post => Ok(Route::ForgetCert(parse_id(id)?)),
            _ => Err(Reply::method_not_allowed("POST")),
        },
        ["printers", id, "camera", action] => camera_route(m, id, action),
        ["printers", id, "camera", "hls", file] => {
            let route = hls_route(id, file)?;
            only_get(m, route)
        }
        _ => Err(Reply::not_found()),
    }
}

fn camera_route(m: &Method, id: &str, action: &str) -> Result<Route, Reply> {
    let make = match action {
        "stream" => Route::Stream,
        "stream.mp4" => Route::StreamMp4,
        "stream.m3u8" => Route::Hls,
        "snapshot" => Route::Snapshot,
        "test" => Route::Test,
        "status" => Route::Status,
        "stop" => {
            return match m {
                Method::Get | Method::Post => Ok(Route::Stop(parse_id(id)?)),
                _ => Err(Reply::method_not_allowed("GET POST")),
            };
        }
        _ => return Err(Reply::not_found()),
    };
    match m {
        Method::Get => Ok(make(parse_id(id)?)),
        _ => Err(Reply::method_not_allowed("GET")),
    }
}

/// `init.mp4` or `N.m4s` under `camera/hls/`.
fn hls_route(id: &str, file: &str) -> Result<Route, Reply> {
    if file == "init.mp4" {
        return Ok(Route::HlsInit(parse_id(id)?));
    }
    let Some(sequence) = file
        .strip_suffix(".m4s")
        .and_then(|n| n.parse::<u64>().ok())
    else {
        return Err(Reply::not_found());
    };
    Ok(Route::HlsSegment(parse_id(id)?, sequence))
}

/// The value of the first query parameter named `name`, decoded.
pub fn query_value(query: &str, name: &str) -> Option<String> {
    url::form_urlencoded::parse(query.as_bytes())
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.into_owned())
}

fn mjpg_streamer_action(query: &str) -> Option<SourceAction> {
    match query_value(query, "action")?.as_str() {
        "stream" => Some(SourceAction::Stream),
        "snapshot" => Some(SourceAction::Snapshot),
        _ => None,
    }
}

fn only_get(m: &Method, r: Route) -> Result<Route, Reply> {
    match m {
        Method::Get => Ok(r),
        _ => Err(Reply::method_not_allowed("GET")),
    }
}

fn strip_prefix(path: &str) -> &str {
    match path.strip_prefix(API_PREFIX) {
        Some("") => "/",
        Some(rest) if rest.starts_with('/') => rest,
        _ => path,
    }
}

/// A printer id: a whole number that fits in an i64.
fn parse_id(text: &str) -> Result<i64, Reply> {
    text.parse::<i64>().map_err(|_| {
        Reply::detail(
            400,
            &format!(
                "printer id must be a whole number, not \"{}\"",
                quote_safely(text)
            ),
        )
    })
}

/// Client text fit to quote in an error: short, no control characters.
pub fn quote_safely(text: &str) -> String {
    let mut out: String = text
        .chars()
        .take(MAX_QUOTED)
        .map(|c| if c.is_control() || c == '"' { '?' } else { c })
        .collect();
    if text.chars().count() > MAX_QUOTED {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(m: Method, p: &str) -> Route {
        let (path, query) = split_target(p);
        route(&m, path, query).unwrap_or_else(|r| panic!("{p}: {}", r.status))
    }

    fn status(m: Method, p: &str) -> u16 {
        let (path, query) = split_target(p);
        match route(&m, path, query) {
            Ok(r) => panic!("{p}: routed to {r:?}"),
            Err(reply) => reply.status,
        }
    }

    #[test]
    fn routes_at_root_and_under_api_v1() {
        for prefix in ["", "/api/v1"] {
            let p = |s: &str| format!("{prefix}{s}");
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/stream")),
                Route::Stream(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/stream.mp4")),
                Route::StreamMp4(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/stream.m3u8")),
                Route::Hls(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/hls/init.mp4?v=2")),
                Route::HlsInit(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/hls/17.m4s")),
                Route::HlsSegment(3, 17)
            );
            assert_eq!(
                ok(Method::Post, &p("/printers/3/camera/stop")),
                Route::Stop(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/3/camera/stop")),
                Route::Stop(3)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/0/camera/snapshot")),
                Route::Snapshot(0)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/-1/camera/test")),
                Route::Test(-1)
            );
            assert_eq!(
                ok(Method::Get, &p("/printers/2/camera/status")),
                Route::Status(2)
            );
            assert_eq!(ok(Method::Get, &p("/printers")), Route::ListPrinters);
            assert_eq!(ok(Method::Get, &p("/printers/")), Route::ListPrinters);
            assert_eq!(ok(Method::Post, &p("/printers")), Route::CreatePrinter);
            assert_eq!(
                ok(Method::Patch, &p("/printers/5")),
                Route::UpdatePrinter(5)
            );
            assert_eq!(ok(Method::Put, &p("/printers/5")), Route::UpdatePrinter(5));
            assert_eq!(
                ok(Method::Delete, &p("/printers/5")),
                Route::DeletePrinter(5)
            );
            assert_eq!(
                ok(Method::Post, &p("/printers/5/forget-cert")),
                Route::ForgetCert(5)
            );
            assert_eq!(ok(Method::Get, &p("/healthz")), Route::Health);
        }
        assert_eq!(ok(Method::Get, "/"), Route::Page);
        assert_eq!(ok(Method::Get, "/api/v1"), Route::Page);
        assert_eq!(ok(Method::Get, "/page.js"), Route::PageScript);
    }

    #[test]
    fn misses_are_404_405_or_400() {
        assert_eq!(status(Method::Get, "/nope"), 404);
        assert_eq!(status(Method::Get, "/api/v1x/printers"), 404);
        assert_eq!(status(Method::Get, "/printers/1/camera/nope"), 404);
        assert_eq!(status(Method::Get, "/printers/1/camera"), 404);
        assert_eq!(status(Method::Get, "/printers/1/camera/hls/x.m4s"), 404);
        assert_eq!(status(Method::Get, "/printers/1/camera/hls/-1.m4s"), 404);
        assert_eq!(status(Method::Get, "/printers/1/camera/hls/1.mp4"), 404);
        assert_eq!(status(Method::Post, "/printers/1/camera/hls/1.m4s"), 405);
        assert_eq!(status(Method::Get, "/printers/x/camera/hls/init.mp4"), 400);
        assert_eq!(status(Method::Get, "//printers"), 404);
        assert_eq!(status(Method::Delete, "/printers"), 405);
        assert_eq!(status(Method::Post, "/printers/1/camera/stream"), 405);
        assert_eq!(status(Method::Get, "/printers/1/forget-cert"), 405);
        assert_eq!(status(Method::Get, "/printers/abc/camera/stream"), 400);
        assert_eq!(status(Method::Get, "/printers/99999999999999999999"), 400);
        assert_eq!(status(Method::Get, "/printers/1.5/camera/test"), 400);
        assert_eq!(status(Method::Get, "/printers/%31"), 400);
    }

    #[test]
    fn the_url_forms_of_other_tools() {
        assert_eq!(
            ok(Method::Get, "/printers/3/?action=stream"),
            Route::Stream(3)
        );
        assert_eq!(
            ok(Method::Get, "/printers/3?action=stream&timestamp=17"),
            Route::Stream(3)
        );
        assert_eq!(
            ok(Method::Get, "/printers/3/?bypassCache=1&action=snapshot"),
            Route::Snapshot(3)
        );
        // Another action, or none, is the printer itself.
        assert_eq!(
            ok(Method::Get, "/printers/3/?action=other"),
            Route::GetPrinter(3)
        );
        assert_eq!(
            ok(Method::Delete, "/printers/3?action=stream"),
            Route::DeletePrinter(3)
        );
        assert_eq!(status(Method::Get, "/printers/x/?action=stream"), 400);
        assert_eq!(
            ok(Method::Get, "/api/stream.mjpeg?src=2"),
            Route::BySource(SourceAction::Stream)
        );
        assert_eq!(
            ok(Method::Get, "/api/frame.jpeg?src=door"),
            Route::BySource(SourceAction::Snapshot)
        );
        assert_eq!(
            ok(Method::Get, "/api/stream.mp4?src=door"),
            Route::BySource(SourceAction::Mp4)
        );
        assert_eq!(SourceAction::Mp4.route(4), Route::StreamMp4(4));
        assert_eq!(
            ok(Method::Get, "/api/stream.m3u8?src=door"),
            Route::BySource(SourceAction::Hls)
        );
        assert_eq!(SourceAction::Hls.route(4), Route::HlsOf(4));
        assert_eq!(ok(Method::Get, "/metrics"), Route::Metrics);
        assert_eq!(ok(Method::Get, "/api/v1/metrics"), Route::Metrics);
        assert_eq!(status(Method::Post, "/api/frame.jpeg"), 405);
    }

    #[test]
    fn quotes_are_short_and_clean() {
        assert_eq!(quote_safely("a\"b\nc"), "a?b?c");
        assert_eq!(
            quote_safely(&"x".repeat(100)).chars().count(),
            MAX_QUOTED + 1
        );
    }

    #[test]
    fn target_splits_at_the_first_question_mark() {
        assert_eq!(split_target("/a?fps=3?x"), ("/a", "fps=3?x"));
        assert_eq!(split_target("/a"), ("/a", ""));
    }
}
