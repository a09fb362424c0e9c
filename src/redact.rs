//! Keeping secrets out of logs, responses and errors.
//!
//! These functions work on arbitrary text (log lines, ffmpeg stderr, error
//! messages), not on parsed URLs: a password has to be hidden even when the
//! text around it is not a valid URL. When in doubt they hide too much rather
//! than too little.

/// What a hidden secret is replaced with.
pub const MASK: &str = "****";

/// Hides the secrets of every URL in `text`: the password of every
/// `scheme://user:password@` (`rtsps://bblp:****@10.0.0.5:322/…`), a user
/// name given without a password (`http://****@host/`: it is often an API
/// key), and the value of every query parameter whose name looks like a
/// secret (`?user=admin&pwd=****`, `token=****`; see `secret_name`).
///
/// A URL is recognised by its `//`; the scheme before it may be anything or
/// absent (`//user:pw@host`). Text without `//` (`user:pw@host`) is left
/// alone: it cannot be told apart from an e-mail address or a time stamp.
///
/// The userinfo ends at the last `@` before the next `/`, `?`, `#`, quote or
/// whitespace, so a password may contain `:` and `@` (and anything
/// percent-encoded). The user name ends at the first `:`. A user name is
/// shown when a password follows it, and hidden when none does.
///
/// A password typed raw with `/`, `?`, `#` or a quote in it (not a valid URL,
/// but it can be echoed in an error) is still hidden when what comes before
/// that character cannot be a `host:port`; the password then runs to the last
/// `@` before whitespace. A raw password starting with digits followed by one
/// of those characters looks exactly like a port and is not recognised.
pub fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut from = 0;
    while let Some(found) = text[from..].find("//") {
        let authority = from + found + 2;
        match password_span(&text[authority..]) {
            Some((start, end)) => {
                out.push_str(&text[copied..authority + start]);
                out.push_str(MASK);
                copied = authority + end;
                from = copied;
            }
            None => from = authority,
        }
    }
    out.push_str(&text[copied..]);
    query_secrets(&out)
}

/// Replaces every occurrence of each non-empty secret in `text` with `****`,
/// and URL passwords as `url_passwords` does.
///
/// Every non-empty secret is hidden, however short: a one-character access
/// code would mangle the text, but an unreadable log line is better than a
/// leaked secret. Empty secrets are skipped (they would match everywhere).
/// Longer secrets are replaced first, so that a secret that contains another
/// one is hidden whole rather than partly.
pub fn secrets(text: &str, secrets: &[&str]) -> String {
    let mut ordered: Vec<&str> = secrets.iter().copied().filter(|s| !s.is_empty()).collect();
    ordered.sort_by_key(|s| std::cmp::Reverse(s.len()));
    let mut out = text.to_owned();
    for secret in ordered {
        if out.contains(secret) {
            out = out.replace(secret, MASK);
        }
    }
    url_passwords(&out)
}

/// The secret parts of a parsed URL, as written and decoded, for `secrets`:
/// a program (ffmpeg) may print them in either form, and outside a URL.
pub fn url_secret_parts(url: &url::Url) -> Vec<String> {
    let mut raw = Vec::new();
    match url.password() {
        Some(p) => raw.push(p.to_owned()),
        None => raw.push(url.username().to_owned()),
    }
    if let Some(query) = url.query() {
        for pair in query.split(['&', ';']) {
            if let Some((name, value)) = pair.split_once('=') {
                if secret_name(name) {
                    raw.push(value.to_owned());
                }
            }
        }
    }
    let decoded: Vec<String> = raw.iter().map(|s| decode(s)).collect();
    raw.into_iter()
        .chain(decoded)
        .filter(|s| !s.is_empty())
        .collect()
}

fn decode(s: &str) -> String {
    url::form_urlencoded::parse(format!("v={s}").as_bytes())
        .next()
        .map_or_else(|| s.to_owned(), |(_, v)| v.into_owned())
}

/// Where the password is in `rest` (the text right after a `//`), as byte
/// offsets into `rest`.
fn password_span(rest: &str) -> Option<(usize, usize)> {
    let word = &rest[..rest.find(char::is_whitespace).unwrap_or(rest.len())];
    let url_end = word.find(is_quote).unwrap_or(word.len());
    let authority_end = word[..url_end].find(['/', '?', '#']).unwrap_or(url_end);
    let authority = &word[..authority_end];
    let at = match authority.rfind('@') {
        Some(at) => at,
        None if cannot_be_host_port(authority) => word.rfind('@')?,
        None => return None,
    };
    match word[..at].find(':') {
        Some(colon) if colon + 1 < at => Some((colon + 1, at)),
        // No password: the user name is the secret, if there is one.
        Some(colon) => (colon > 0).then_some((0, colon)),
        None => (at > 0).then_some((0, at)),
    }
}

/// Hides the value of every `name=value` that follows a `?`, `&` or `;`
/// when `name` looks like a secret. Applied to the whole text, not only to
/// recognised URLs: a path with a query is logged without its scheme too.
/// A value ends at `&`, `;`, `#`, a quote or whitespace.
fn query_secrets(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut copied = 0;
    let mut i = 0;
    while i < bytes.len() {
        if !matches!(bytes[i], b'?' | b'&' | b';') {
            i += 1;
            continue;
        }
        let name_start = i + 1;
        let name_len = bytes[name_start..]
            .iter()
            .take_while(|b| {
                b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b'%' | b'+')
            })
            .count();
        let eq = name_start + name_len;
        if name_len == 0 || bytes.get(eq) != Some(&b'=') {
            i = name_start;
            continue;
        }
        let value_start = eq + 1;
        let value_end = text[value_start..]
            .find(|c: char| c.is_whitespace() || matches!(c, '&' | ';' | '#') || is_quote(c))
            .map_or(text.len(), |n| value_start + n);
        if value_end > value_start && secret_name(&text[name_start..eq]) {
            out.push_str(&text[copied..value_start]);
            out.push_str(MASK);
            copied = value_end;
        }
        i = value_end;
    }
    out.push_str(&text[copied..]);
    out
}

/// Query parameter names whose values are hidden, compared after
/// percent-decoding, lower-casing and dropping `_`, `-` and `.`.
const SECRET_NAMES: [&str; 7] = ["sig", "sid", "pw", "p", "code", "accesscode", "hash"];
/// Parts of names whose values are hidden (`pass` covers password, passwd,
/// passcode; `key` apikey and api_key; `sign` signature).
const SECRET_PARTS: [&str; 9] = [
    "pass",
    "pwd",
    "token",
    "secret",
    "key",
    "auth",
    "sign",
    "credential",
    "session",
];

/// Whether a query parameter called `raw` (as written) may hold a secret.
fn secret_name(raw: &str) -> bool {
    let name: String = decode(raw)
        .chars()
        .filter(|c| !matches!(c, '_' | '-' | '.' | ' '))
        .flat_map(char::to_lowercase)
        .collect();
    SECRET_NAMES.contains(&name.as_str()) || SECRET_PARTS.iter().any(|p| name.contains(p))
}

/// True when `authority` (with no `@`) is `something:x` where `x` is not a
/// port: then it is the start of a userinfo whose password holds a raw `/`,
/// `?`, `#` or quote.
fn cannot_be_host_port(authority: &str) -> bool {
    if authority.starts_with('[') {
        return false; // an IPv6 literal: its colons are not a userinfo's
    }
    match authority.split_once(':') {
        Some((_, after)) => !after.is_empty() && !after.bytes().all(|b| b.is_ascii_digit()),
        None => false,
    }
}

fn is_quote(c: char) -> bool {
    matches!(c, '"' | '\'' | '`' | '<' | '>')
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn hides_the_password_of_a_camera_url() {
        assert_eq!(
            url_passwords("rtsps://bblp:12345678@10.0.0.5:322/streaming/live/1"),
            "rtsps://bblp:****@10.0.0.5:322/streaming/live/1"
        );
    }

    #[test]
    fn hides_passwords_in_surrounding_text() {
        assert_eq!(
            url_passwords(
                "[rtsp @ 0x55d0] rtsp://admin:hunter2@192.168.1.9/live: Connection refused"
            ),
            "[rtsp @ 0x55d0] rtsp://admin:****@192.168.1.9/live: Connection refused"
        );
        assert_eq!(
            url_passwords(r#"opening "http://u:pw@cam.local/x?y=1#z" failed"#),
            r#"opening "http://u:****@cam.local/x?y=1#z" failed"#
        );
        assert_eq!(
            url_passwords("url='rtsp://a:b@h' done"),
            "url='rtsp://a:****@h' done"
        );
    }

    #[test]
    fn hides_every_url_in_a_text() {
        assert_eq!(
            url_passwords("http://a:one@h1/ and https://b:two@h2 and rtsp://c:three@h3:554/p"),
            "http://a:****@h1/ and https://b:****@h2 and rtsp://c:****@h3:554/p"
        );
        assert_eq!(
            url_passwords("http://a:one@h1,http://b:two@h2"),
            "http://a:****@h1,http://b:****@h2"
        );
    }

    #[test]
    fn password_may_hold_colons_ats_and_percent_escapes() {
        assert_eq!(url_passwords("rtsp://u:a:b:c@h/"), "rtsp://u:****@h/");
        assert_eq!(url_passwords("rtsp://u:p@ss@h/"), "rtsp://u:****@h/");
        assert_eq!(
            url_passwords("rtsp://u:p%40s%2Fs%3F%23@h/"),
            "rtsp://u:****@h/"
        );
        assert_eq!(url_passwords("rtsp://u:pässwörd€@h/"), "rtsp://u:****@h/");
    }

    #[test]
    fn raw_delimiters_in_a_password_are_still_hidden() {
        assert_eq!(
            url_passwords("rtsp://admin:ab/cd@h/live"),
            "rtsp://admin:****@h/live"
        );
        assert_eq!(url_passwords("rtsp://admin:ab?cd@h"), "rtsp://admin:****@h");
        assert_eq!(url_passwords("rtsp://admin:ab#cd@h"), "rtsp://admin:****@h");
        assert_eq!(url_passwords("rtsp://admin:a//b@h"), "rtsp://admin:****@h");
        assert_eq!(
            url_passwords("rtsp://admin:pa'ss@h x"),
            "rtsp://admin:****@h x"
        );
    }

    #[test]
    fn leaves_urls_without_secrets_alone() {
        for text in [
            "http://cam.local:8080/stream",
            "http://cam.local:8080/?action=stream&user=admin&resolution=640x480",
            "http://cam.local:8080/login?email=a@b.example",
            "http://[::1]:8080/x@y",
            "http://[fe80::1]/",
            "http://host/path?x=a:b@c",
            "no url here: user:pw@host",
            "mail me: someone@example.com",
            "[mjpeg @ 0x1234] error",
            "",
            "//",
            "://",
            "a//b",
        ] {
            assert_eq!(url_passwords(text), text, "{text}");
        }
    }

    #[test]
    fn hides_a_user_name_given_without_a_password() {
        assert_eq!(url_passwords("http://APIKEY@host/"), "http://****@host/");
        assert_eq!(
            url_passwords("rtsp://bblp@10.0.0.5:322/live"),
            "rtsp://****@10.0.0.5:322/live"
        );
        assert_eq!(
            url_passwords("rtsp://bblp:@10.0.0.5/live"),
            "rtsp://****:@10.0.0.5/live"
        );
        assert_eq!(
            url_passwords("GET failed for \"https://k3y@cam.lan/x\" ok"),
            "GET failed for \"https://****@cam.lan/x\" ok"
        );
    }

    #[test]
    fn hides_secret_query_values() {
        assert_eq!(
            url_passwords("http://host/video.cgi?user=admin&pwd=hunter2"),
            "http://host/video.cgi?user=admin&pwd=****"
        );
        assert_eq!(
            url_passwords("rtsp://host/live?token=abc123 failed"),
            "rtsp://host/live?token=**** failed"
        );
        for name in [
            "pwd",
            "pass",
            "password",
            "passwd",
            "key",
            "apikey",
            "api_key",
            "API-Key",
            "token",
            "access_token",
            "auth",
            "secret",
            "client_secret",
            "sig",
            "signature",
            "X-Amz-Signature",
            "sessionid",
            "p%61ss",
        ] {
            let text = format!("http://h/x?a=1&{name}=s3cr3t&b=2#f");
            assert_eq!(
                url_passwords(&text),
                format!("http://h/x?a=1&{name}=****&b=2#f"),
                "{name}"
            );
        }
        // Without a scheme too, and in a quoted URL.
        assert_eq!(
            url_passwords("GET /snapshot.cgi?pwd=hunter2 HTTP/1.1"),
            "GET /snapshot.cgi?pwd=**** HTTP/1.1"
        );
        assert_eq!(
            url_passwords(r#"url="http://h/?key=k1;token=t2" x"#),
            r#"url="http://h/?key=****;token=****" x"#
        );
        assert_eq!(url_passwords("http://h/?token="), "http://h/?token=");
    }

    #[test]
    fn secret_parts_of_a_url() {
        let parts = |s: &str| url_secret_parts(&url::Url::parse(s).unwrap());
        assert_eq!(parts("rtsp://u:p%40ss@h/"), ["p%40ss", "p@ss"]);
        assert_eq!(parts("http://APIKEY@h/"), ["APIKEY", "APIKEY"]);
        assert_eq!(
            parts("rtsp://h/live?user=admin&token=a%2Bb&x=1"),
            ["a%2Bb", "a+b"]
        );
        assert!(parts("rtsp://h/live?user=admin").is_empty());
    }

    #[test]
    fn scheme_is_optional() {
        assert_eq!(url_passwords("//u:pw@h/x"), "//u:****@h/x");
        assert_eq!(url_passwords("://u:pw@h"), "://u:****@h");
        assert_eq!(url_passwords("x+y-z.1://u:pw@h"), "x+y-z.1://u:****@h");
    }

    #[test]
    fn empty_user_with_password_is_hidden() {
        assert_eq!(url_passwords("rtsp://:pw@h/"), "rtsp://:****@h/");
    }

    #[test]
    fn is_idempotent_on_examples() {
        let once = url_passwords("rtsps://bblp:12345678@10.0.0.5:322/x rtsp://a:b/c@d");
        assert_eq!(url_passwords(&once), once);
    }

    #[test]
    fn secrets_hides_each_secret_and_url_passwords() {
        assert_eq!(
            secrets(
                "code 12345678 token abcdEFGH rtsp://u:pw@h/",
                &["12345678", "abcdEFGH"]
            ),
            "code **** token **** rtsp://u:****@h/"
        );
    }

    #[test]
    fn secrets_skips_empty_and_hides_short() {
        assert_eq!(secrets("abc", &[""]), "abc");
        assert_eq!(secrets("a1b1", &["1"]), "a****b****");
    }

    #[test]
    fn secrets_hides_the_longer_secret_whole() {
        assert_eq!(secrets("x abcdefgh y", &["abcd", "abcdefgh"]), "x **** y");
        assert_eq!(secrets("x abcdefgh y", &["abcdefgh", "abcd"]), "x **** y");
    }

    #[test]
    fn secrets_in_a_url_password() {
        assert_eq!(
            secrets("rtsps://bblp:12345678@10.0.0.5:322/x", &["12345678"]),
            "rtsps://bblp:****@10.0.0.5:322/x"
        );
    }

    /// Text that holds no `/` or `@`, so it cannot start or end a URL.
    /// Text around a URL. No `=`: a `name=value` pair whose name looks
    /// like a secret (`p=…`, `token=…`) is masked wherever it stands, by
    /// design, so filler must not make one.
    fn filler() -> impl Strategy<Value = String> {
        "[^/@=]{0,20}"
    }

    proptest! {
        #[test]
        fn never_panics(text in any::<String>()) {
            let _ = url_passwords(&text);
        }

        #[test]
        fn never_panics_on_url_like_text(text in "[a-z:/@?#'\" é€\\[\\]0-9.%]{0,40}") {
            let _ = url_passwords(&text);
            let _ = secrets(&text, &["a", "", "é€"]);
        }

        #[test]
        fn is_idempotent(text in "[a-z:/@?#'\" é0-9.]{0,40}") {
            let once = url_passwords(&text);
            prop_assert_eq!(url_passwords(&once), once.clone());
        }

        #[test]
        fn hides_any_password(
            before in filler(),
            after in filler(),
            scheme in "(http|https|rtsp|rtsps|x)",
            user in "[A-Za-z0-9._~%-]{0,10}",
            password in "[A-Za-z0-9._~%!$&()*+,;=:@-]{1,20}",
            host in "[a-z0-9.-]{1,15}(:[0-9]{1,5})?",
            // No `=` in the query: a secret-looking `name=value` is masked by design.
            path in "(/[a-z0-9/._-]{0,10})?(\\?[a-z&@:]{0,10})?",
        ) {
            let url = format!("{scheme}://{user}:{password}@{host}{path}");
            let text = format!("{before} {url} {after}");
            let expected = format!("{before} {scheme}://{user}:****@{host}{path} {after}");
            prop_assert_eq!(url_passwords(&text), expected);
        }

        #[test]
        fn hides_any_user_name_without_a_password(
            scheme in "(http|https|rtsp|rtsps)",
            user in "[A-Za-z0-9._~%-]{1,20}",
            host in "[a-z0-9.-]{1,15}(:[0-9]{1,5})?",
        ) {
            let text = format!("{scheme}://{user}@{host}/x");
            prop_assert_eq!(url_passwords(&text), format!("{scheme}://****@{host}/x"));
        }

        #[test]
        fn hides_any_secret_query_value(
            name in "(pwd|token|api_key|signature|passwd|auth)",
            value in "[A-Za-z0-9._~%+/=-]{1,20}",
            other in "[x-z]{1,5}=[a-z0-9]{0,5}",
        ) {
            let text = format!("http://h/p?{other}&{name}={value}&{other} x");
            let expected = format!("http://h/p?{other}&{name}=****&{other} x");
            prop_assert_eq!(url_passwords(&text), expected);
        }

        #[test]
        fn secrets_leave_no_secret(
            text in "[a-z0-9 :/@]{0,40}",
            a in "[a-z0-9]{1,6}",
            b in "[a-z0-9]{1,6}",
        ) {
            let text = format!("{text}{a}{text}{b}{a}");
            let out = secrets(&text, &[a.as_str(), b.as_str()]);
            prop_assert!(!out.contains(&a), "{} in {}", a, out);
            prop_assert!(!out.contains(&b), "{} in {}", b, out);
        }
    }
}
