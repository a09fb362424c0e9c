//! Keeping secrets out of logs, responses and errors.
// TEMP until merge: a minimal implementation so the ffmpeg branch's tests run.

/// Replaces the password of every `scheme://user:password@` in `text` with
/// `****` (e.g. `rtsps://bblp:****@10.0.0.5:322/…`).
pub fn url_passwords(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        let end = tail
            .find(|c: char| c.is_whitespace() || c == '/' || c == '"' || c == '\'')
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        match (authority.rfind('@'), authority.find(':')) {
            (Some(at), Some(colon)) if colon < at => {
                out.push_str(&authority[..colon + 1]);
                out.push_str("****");
                out.push_str(&authority[at..]);
            }
            _ => out.push_str(authority),
        }
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// Replaces every occurrence of each non-empty secret in `text` with `****`,
/// and URL passwords as `url_passwords` does.
pub fn secrets(text: &str, secrets: &[&str]) -> String {
    let mut out = url_passwords(text);
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        out = out.replace(s, "****");
    }
    out
}
