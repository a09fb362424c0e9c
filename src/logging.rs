//! The logger: env_logger reading `RUST_LOG`, one line per record on
//! stderr, `[2026-11-21T11:00:00Z INFO  printcam::hub] message`.
//!
//! env_logger without its default features, for size (docs/sizes.md): no
//! colours, `/TEXT` keeps messages that contain TEXT (a substring, not a
//! regex), and the UTC timestamp is written here rather than by jiff.

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

/// Installs the logger, with `default` as the filter when `RUST_LOG` is
/// unset or blank. A second call (a second command in one process) leaves
/// the first logger in place.
pub fn init(default: &str) {
    let spec = filter_spec(std::env::var("RUST_LOG").ok(), default);
    // Err only when a logger is already installed.
    let _ = builder(&spec).try_init();
}

/// The filter to use: `RUST_LOG` unless it is unset or blank (env_logger
/// would read a blank one as "errors only"), without blanks in its
/// directives: env_logger keeps those around a `=`, so `printcam = debug`
/// would name the target "printcam " that nothing has.
fn filter_spec(rust_log: Option<String>, default: &str) -> String {
    let spec = rust_log
        .filter(|s| !s.trim().is_empty())
        .unwrap_or_else(|| default.to_string());
    let (directives, text) = spec.split_once('/').unwrap_or((&spec, ""));
    let mut out: String = directives.split_whitespace().collect();
    if spec.len() > directives.len() {
        out.push('/');
        out.push_str(text);
    }
    out
}

/// A logger for `spec` (env_logger warns on stderr about directives it
/// does not understand, and skips them).
fn builder(spec: &str) -> env_logger::Builder {
    let mut builder = env_logger::Builder::new();
    builder.parse_filters(spec).format(|out, record| {
        // env_logger writes each formatted record in one write, so lines
        // of different threads never interleave.
        writeln!(
            out,
            "[{} {:<5} {}] {}",
            utc_timestamp(SystemTime::now()),
            record.level(),
            record.target(),
            bounded(record.args().to_string())
        )
    });
    builder
}

/// Longest message a log line carries: messages quote what clients and
/// cameras sent, and a line must not grow with it.
const MAX_MESSAGE: usize = 2048;

/// `message` cut at `MAX_MESSAGE` characters (marked `…`), one line.
fn bounded(message: String) -> String {
    let several_lines = message.contains(['\n', '\r']);
    if message.chars().count() <= MAX_MESSAGE && !several_lines {
        return message;
    }
    let mut out: String = message
        .chars()
        .take(MAX_MESSAGE)
        .map(|c| if c == '\n' || c == '\r' { ' ' } else { c })
        .collect();
    if message.chars().count() > MAX_MESSAGE {
        out.push('…');
    }
    out
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

    #[test]
    fn a_message_is_bounded_and_kept_on_one_line() {
        assert_eq!(bounded("short".into()), "short");
        assert_eq!(bounded("two\nlines".into()), "two lines");
        let long = bounded("x".repeat(10_000));
        assert_eq!(long.chars().count(), MAX_MESSAGE + 1);
        assert!(long.ends_with('…'));
    }
    use log::{Level, LevelFilter, Log, Metadata, Record};
    use std::time::Duration;

    struct Filter(env_logger::Logger);

    fn filter(spec: &str) -> Filter {
        Filter(builder(&filter_spec(Some(spec.into()), "off")).build())
    }

    impl Filter {
        fn enabled(&self, target: &str, level: Level) -> bool {
            self.0
                .enabled(&Metadata::builder().target(target).level(level).build())
        }

        fn text_matches(&self, message: &str) -> bool {
            let args = format_args!("{message}");
            let record = Record::builder()
                .target("printcam")
                .level(Level::Error)
                .args(args)
                .build();
            self.0.matches(&record)
        }

        fn max_level(&self) -> LevelFilter {
            self.0.filter()
        }
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
    fn invalid_directives_are_skipped() {
        let f = filter("info,printcam=loud");
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
        // A substring, not a regex: env_logger's `regex` feature is off.
        assert!(filter("info/a.c").text_matches("(a.c)"));
        assert!(!filter("info/a.c").text_matches("abc"));
    }

    #[test]
    fn a_blank_rust_log_means_the_default() {
        for blank in [None, Some(""), Some("  ")] {
            assert_eq!(filter_spec(blank.map(String::from), "info"), "info");
        }
        assert_eq!(filter_spec(Some("debug".into()), "info"), "debug");
        assert_eq!(
            filter_spec(Some(" warn, a = debug/x y/z ".into()), "info"),
            "warn,a=debug/x y/z "
        );
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
