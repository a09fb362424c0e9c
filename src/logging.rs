//! The logger: `RUST_LOG` filtering as env_logger reads it, one line per
//! record on stderr, `[2026-11-21T11:00:00Z INFO  printcam::hub] message`.
//!
//! Our own rather than env_logger's: with its filter, formatting and
//! timestamp crates it was ~25 KB of a router binary that has to stay under
//! 2 MB (README, "Sizes"), for what is a few dozen lines here.
//!
//! `RUST_LOG` is a comma-separated list of directives, each `LEVEL`,
//! `TARGET` (everything from that target) or `TARGET=LEVEL`, optionally
//! followed by `/TEXT` to keep only messages containing TEXT. A record's
//! level is judged by the longest directive whose target begins its target
//! (`printcam=debug` covers `printcam::hub`); a record no directive covers
//! is dropped. Levels are off, error, warn, info, debug and trace (trace
//! records are compiled out of release builds).

use std::io::Write;
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

use log::{LevelFilter, Log, Metadata, Record};

/// Installs the logger, with `default` as the filter when `RUST_LOG` is
/// unset or empty. A second call (a second command in one process) leaves
/// the first logger in place.
pub fn init(default: &str) {
    static LOGGER: OnceLock<Logger> = OnceLock::new();
    let spec = std::env::var("RUST_LOG")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let mut installed = false;
    let logger = LOGGER.get_or_init(|| {
        installed = true;
        let (filter, invalid) = Filter::parse(spec.as_deref().unwrap_or(default));
        for directive in invalid {
            // No logger yet to say it with.
            eprintln!(
                "printcam: RUST_LOG: ignoring {directive:?}: not LEVEL, TARGET or TARGET=LEVEL"
            );
        }
        Logger { filter }
    });
    if installed && log::set_logger(logger).is_ok() {
        log::set_max_level(logger.filter.max_level());
    }
}

struct Logger {
    filter: Filter,
}

impl Log for Logger {
    fn enabled(&self, metadata: &Metadata<'_>) -> bool {
        self.filter.enabled(metadata.target(), metadata.level())
    }

    fn log(&self, record: &Record<'_>) {
        if !self.enabled(record.metadata()) {
            return;
        }
        let message = record.args().to_string();
        if !self.filter.text_matches(&message) {
            return;
        }
        let line = format!(
            "[{} {:<5} {}] {}\n",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.target(),
            message
        );
        // One write per line, so lines of different threads never interleave;
        // a closed stderr is nothing to complain to.
        let _ = std::io::stderr().lock().write_all(line.as_bytes());
    }

    fn flush(&self) {}
}

/// A parsed `RUST_LOG`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Filter {
    /// `(target, level)`; `None` is the directive without a target.
    directives: Vec<(Option<String>, LevelFilter)>,
    /// The `/TEXT` part, if any.
    text: Option<String>,
}

impl Filter {
    /// Parses a spec; also returns the directives that were not understood
    /// (env_logger also skips those, with a warning).
    pub fn parse(spec: &str) -> (Filter, Vec<String>) {
        let (directives_part, text) = match spec.split_once('/') {
            Some((d, t)) => (d, Some(t.to_string())),
            None => (spec, None),
        };
        let mut directives = Vec::new();
        let mut invalid = Vec::new();
        for part in directives_part.split(',').map(str::trim) {
            if part.is_empty() {
                continue;
            }
            let parsed = match part.split_once('=') {
                Some((target, level)) => match (target.trim(), level.trim().parse()) {
                    (t, Ok(level)) if !t.is_empty() => Some((Some(t.to_string()), level)),
                    _ => None,
                },
                // A bare word is a level if it names one, else a target
                // with every level.
                None => Some(match part.parse::<LevelFilter>() {
                    Ok(level) => (None, level),
                    Err(_) => (Some(part.to_string()), LevelFilter::Trace),
                }),
            };
            match parsed {
                Some(d) => directives.push(d),
                None => invalid.push(part.to_string()),
            }
        }
        (Filter { directives, text }, invalid)
    }

    /// The level a record of `target` may have at most.
    fn level_for(&self, target: &str) -> LevelFilter {
        let mut best: Option<(usize, LevelFilter)> = None;
        for (name, level) in &self.directives {
            let len = match name {
                None => 0,
                Some(n) if target.starts_with(n.as_str()) => n.len(),
                Some(_) => continue,
            };
            // The longest match wins; among equals, the later directive.
            if best.is_none_or(|(l, _)| len >= l) {
                best = Some((len, *level));
            }
        }
        best.map_or(LevelFilter::Off, |(_, level)| level)
    }

    pub fn enabled(&self, target: &str, level: log::Level) -> bool {
        level <= self.level_for(target)
    }

    fn text_matches(&self, message: &str) -> bool {
        self.text.as_deref().is_none_or(|t| message.contains(t))
    }

    /// The most verbose level any directive allows, for `log::set_max_level`.
    pub fn max_level(&self) -> LevelFilter {
        self.directives
            .iter()
            .map(|(_, level)| *level)
            .max()
            .unwrap_or(LevelFilter::Off)
    }
}

/// `2026-11-21T11:00:00Z`: UTC to the second, as env_logger printed it.
pub fn utc_timestamp(now: SystemTime) -> String {
    // A clock before 1970 is printed as 1970 rather than failing a log line.
    let secs = now.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let (days, rem) = (secs / 86_400, secs % 86_400);
    let (year, month, day) = civil_from_days(days);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

/// Year, month, day of a count of days since 1970-01-01 (Howard Hinnant's
/// `civil_from_days`, for days ≥ 0).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let doe = z % 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;
    use log::Level;
    use std::time::Duration;

    fn filter(spec: &str) -> Filter {
        let (f, invalid) = Filter::parse(spec);
        assert!(invalid.is_empty(), "{invalid:?}");
        f
    }

    #[test]
    fn a_bare_level_applies_to_every_target() {
        let f = filter("info");
        assert!(f.enabled("printcam::hub", Level::Info));
        assert!(f.enabled("rustls::client", Level::Warn));
        assert!(!f.enabled("printcam::hub", Level::Debug));
        assert_eq!(f.max_level(), LevelFilter::Info);
    }

    #[test]
    fn the_longest_matching_target_wins() {
        let f = filter("warn,printcam=debug,printcam::http=error");
        assert!(f.enabled("printcam::hub", Level::Debug));
        assert!(!f.enabled("printcam::http::conn", Level::Warn));
        assert!(f.enabled("printcam::http::conn", Level::Error));
        assert!(!f.enabled("ureq::run", Level::Info));
        assert!(f.enabled("ureq::run", Level::Warn));
        assert_eq!(f.max_level(), LevelFilter::Debug);
    }

    #[test]
    fn a_target_alone_allows_everything_and_nothing_else() {
        let f = filter("printcam");
        assert!(f.enabled("printcam::hub", Level::Trace));
        assert!(!f.enabled("rustls", Level::Error));
        assert_eq!(f.max_level(), LevelFilter::Trace);
    }

    #[test]
    fn off_and_case_and_spaces() {
        let f = filter(" INFO , printcam::http = OFF ");
        assert!(!f.enabled("printcam::http", Level::Error));
        assert!(f.enabled("printcam::hub", Level::Info));
    }

    #[test]
    fn invalid_directives_are_reported_and_skipped() {
        let (f, invalid) = Filter::parse("info,printcam=loud,=debug");
        assert_eq!(invalid, ["printcam=loud", "=debug"]);
        assert!(f.enabled("printcam", Level::Info));
        assert!(!f.enabled("printcam", Level::Debug));
    }

    #[test]
    fn text_after_a_slash_filters_messages() {
        let f = filter("debug/camera");
        assert!(f.enabled("printcam::hub", Level::Debug));
        assert!(f.text_matches("garage: camera lost"));
        assert!(!f.text_matches("listening"));
        assert!(filter("info").text_matches("anything"));
    }

    #[test]
    fn empty_spec_logs_nothing() {
        let f = filter("");
        assert!(!f.enabled("printcam", Level::Error));
        assert_eq!(f.max_level(), LevelFilter::Off);
    }

    #[test]
    fn timestamps_are_utc_seconds() {
        let at = |secs| utc_timestamp(UNIX_EPOCH + Duration::from_secs(secs));
        assert_eq!(at(0), "1970-01-01T00:00:00Z");
        // 2026-11-21T11:00:00Z
        assert_eq!(at(1_795_258_800), "2026-11-21T11:00:00Z");
        // Leap day, and the day after a century that is not a leap year.
        assert_eq!(at(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(at(4_107_542_400), "2100-03-01T00:00:00Z");
        assert_eq!(at(1_704_067_199), "2023-12-31T23:59:59Z");
    }
}
