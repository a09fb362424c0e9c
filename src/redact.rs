//! Keeping secrets out of logs, responses and errors. (STUB: being written; API fixed.)

/// Replaces the password of every `scheme://user:password@` in `text` with
/// `****` (e.g. `rtsps://bblp:****@10.0.0.5:322/…`).
pub fn url_passwords(_text: &str) -> String {
    todo!()
}

/// Replaces every occurrence of each non-empty secret in `text` with `****`,
/// and URL passwords as `url_passwords` does.
pub fn secrets(_text: &str, _secrets: &[&str]) -> String {
    todo!()
}
