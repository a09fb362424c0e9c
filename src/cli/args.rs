//! The parser: a scanner of flags and one small parser per command.

use super::command::{Change, CliError, Command, Overrides};
use super::help::Topic;
use crate::camera::{CameraType, RtspClient};
use crate::config::{
    parse_count, parse_hosts, parse_origin, parse_secs, parse_timeout, parse_token,
};
use crate::orientation::{Flip, Rotation};
use crate::registry::{Printer, PrinterPatch};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// One option a command accepts.
#[derive(Debug, Clone, Copy)]
struct Flag {
    long: &'static str,
    short: Option<char>,
    takes_value: bool,
}

const fn opt(long: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        takes_value: true,
    }
}

const fn switch(long: &'static str) -> Flag {
    Flag {
        long,
        short: None,
        takes_value: false,
    }
}

/// Accepted by every command, and before the command name.
const GLOBAL: &[Flag] = &[opt("db"), switch("allow-loopback"), opt("ffmpeg")];
const SERVE: &[Flag] = &[
    opt("listen"),
    switch("demo"),
    opt("grace"),
    opt("token"),
    opt("cors-origin"),
    opt("max-viewers"),
    opt("max-viewers-per-camera"),
    opt("write-timeout"),
    opt("max-connections-per-client"),
    opt("allow-host"),
    opt("camera-quiet-timeout"),
    opt("printer-ca"),
];
const FIELDS: &[Flag] = &[
    opt("name"),
    opt("ip"),
    opt("access-code"),
    opt("model"),
    opt("serial"),
    opt("camera-port"),
    opt("camera-url"),
    opt("camera-type"),
    switch("camera-enabled"),
    switch("camera-disabled"),
    opt("camera-rotation"),
    opt("camera-flip"),
    opt("rtsp-client"),
];
const LIST: &[Flag] = &[switch("json")];
const SNAPSHOT: &[Flag] = &[
    Flag {
        long: "output",
        short: Some('o'),
        takes_value: true,
    },
    switch("demo"),
];
const DEMO: &[Flag] = &[switch("demo")];
const NONE: &[Flag] = &[];

/// The options and positional arguments of one command.
#[derive(Debug, Default)]
struct Matches {
    /// Option name → value (None for a switch).
    options: HashMap<&'static str, Option<String>>,
    positionals: Vec<String>,
}

impl Matches {
    fn value(&self, long: &str) -> Option<&str> {
        self.options.get(long).and_then(|v| v.as_deref())
    }

    fn has(&self, long: &str) -> bool {
        self.options.contains_key(long)
    }

    fn no_positionals(&self, topic: Topic) -> Result<(), CliError> {
        match self.positionals.len() {
            0 => Ok(()),
            // Not echoed: a stray word may be a secret that lost its flag.
            n => Err(topic.usage(format!("{n} unexpected argument(s)"))),
        }
    }

    /// The single positional argument, a printer id.
    fn id(&self, topic: Topic) -> Result<i64, CliError> {
        match self.positionals.as_slice() {
            [one] => parse_id(topic, one),
            [] => Err(topic.usage("missing printer ID")),
            _ => Err(topic.usage("expected one printer ID")),
        }
    }
}

fn parse_id(topic: Topic, s: &str) -> Result<i64, CliError> {
    s.parse::<i64>()
        .ok()
        .filter(|id| *id >= 0)
        .ok_or_else(|| topic.usage(format!("printer ID must be a number, got {s:?}")))
}

/// `--name=value` → (`--name`, Some(`value`)).
fn split_inline(token: &str) -> (&str, Option<&str>) {
    match token.split_once('=') {
        Some((name, value)) if token.starts_with("--") => (name, Some(value)),
        _ => (token, None),
    }
}

fn find_flag(specs: &[&[Flag]], name: &str) -> Option<Flag> {
    let all = || specs.iter().flat_map(|s| s.iter());
    if let Some(long) = name.strip_prefix("--") {
        return all().find(|f| f.long == long).copied();
    }
    let mut chars = name.strip_prefix('-')?.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => all().find(|f| f.short == Some(c)).copied(),
        _ => None,
    }
}

fn is_option(token: &str) -> bool {
    token.starts_with('-') && token != "-"
}

/// Sorts `tokens` into options (checked against `specs`) and positionals.
fn scan(topic: Topic, tokens: &[String], specs: &[&[Flag]]) -> Result<Matches, CliError> {
    let mut m = Matches::default();
    let mut it = tokens.iter();
    while let Some(token) = it.next() {
        if token == "--" {
            m.positionals.extend(it.by_ref().cloned());
            break;
        }
        if !is_option(token) {
            m.positionals.push(token.clone());
            continue;
        }
        let (name, inline) = split_inline(token);
        let flag =
            find_flag(specs, name).ok_or_else(|| topic.usage(format!("unknown option {name}")))?;
        let value = match (flag.takes_value, inline) {
            (true, Some(v)) => Some(v.to_string()),
            (true, None) => Some(next_value(topic, &flag, &mut it)?),
            (false, None) => None,
            (false, Some(_)) => return Err(topic.usage(format!("--{} takes no value", flag.long))),
        };
        if m.options.insert(flag.long, value).is_some() {
            return Err(topic.usage(format!("--{} given more than once", flag.long)));
        }
    }
    Ok(m)
}

/// The value after a flag; a following `--option` means it was forgotten.
fn next_value<'a>(
    topic: Topic,
    flag: &Flag,
    it: &mut impl Iterator<Item = &'a String>,
) -> Result<String, CliError> {
    match it.next() {
        Some(v) if !v.starts_with("--") => Ok(v.clone()),
        _ => Err(topic.usage(format!("--{} needs a value", flag.long))),
    }
}

fn wants_help(tokens: &[String]) -> bool {
    tokens
        .iter()
        .take_while(|t| *t != "--")
        .any(|t| t == "-h" || t == "--help")
}

// ---------------------------------------------------------------- parsing

/// Parses the arguments after the program name.
pub fn parse(args: &[String]) -> Result<Command, CliError> {
    let (global, rest) = match leading_options(args)? {
        Leading::Answer(cmd) => return Ok(*cmd),
        Leading::Until(i) => args.split_at(i),
    };
    let Some((word, rest)) = rest.split_first() else {
        return match global {
            [] => Err(CliError::Help(Topic::Overview)),
            _ => Err(Topic::Overview.usage("missing command")),
        };
    };
    let tokens = || [global, rest].concat();
    match word.as_str() {
        "serve" => leaf(Topic::Serve, &tokens(), serve),
        "printer" => printer(global, rest),
        "snapshot" => leaf(Topic::Snapshot, &tokens(), snapshot),
        "test" => by_id(Topic::Test, &tokens(), Command::Test),
        "usb-cameras" => leaf(Topic::UsbCameras, &tokens(), |m| {
            m.no_positionals(Topic::UsbCameras)?;
            Ok(Command::UsbCameras)
        }),
        "help" => help(rest),
        "version" => Ok(Command::Version),
        other => Err(Topic::Overview.usage(format!(
            "unknown command {other:?}{}",
            did_you_mean(other, COMMANDS)
        ))),
    }
}

const COMMANDS: &[&str] = &[
    "serve",
    "printer",
    "snapshot",
    "test",
    "usb-cameras",
    "help",
];
const PRINTER_COMMANDS: &[&str] = &["add", "list", "show", "set", "remove", "forget-cert"];

/// `; did you mean "x"?` for the closest of `known` within two edits (or
/// one that starts with what was typed), else nothing.
fn did_you_mean(typed: &str, known: &[&str]) -> String {
    let best = known
        .iter()
        .map(|k| (edits(typed, k), *k))
        .filter(|(d, k)| *d <= 2 || (typed.len() >= 2 && k.starts_with(typed)))
        .min();
    best.map_or(String::new(), |(_, k)| format!("; did you mean {k:?}?"))
}

/// Levenshtein distance, for short words.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut prev = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let here = row[j + 1];
            row[j + 1] = (prev + usize::from(ca != *cb))
                .min(row[j] + 1)
                .min(here + 1);
            prev = here;
        }
    }
    row[b.len()]
}

/// What the options before the command name come to.
enum Leading {
    /// `--help` or `--version`: nothing else matters.
    Answer(Box<Command>),
    /// The command name is at this index.
    Until(usize),
}

fn leading_options(args: &[String]) -> Result<Leading, CliError> {
    let mut i = 0;
    while let Some(token) = args.get(i).filter(|t| is_option(t)) {
        match token.as_str() {
            "-h" | "--help" => {
                return Ok(Leading::Answer(Box::new(Command::Help(Topic::Overview))))
            }
            "-V" | "--version" => return Ok(Leading::Answer(Box::new(Command::Version))),
            _ => {}
        }
        let (name, inline) = split_inline(token);
        let flag = find_flag(&[GLOBAL], name)
            .ok_or_else(|| Topic::Overview.usage(format!("unknown option {name}")))?;
        i += if flag.takes_value && inline.is_none() {
            2
        } else {
            1
        };
    }
    if i > args.len() {
        return Err(Topic::Overview.usage("an option before the command needs a value"));
    }
    Ok(Leading::Until(i))
}

fn printer(global: &[String], rest: &[String]) -> Result<Command, CliError> {
    let Some((sub, rest)) = rest.split_first() else {
        return Err(CliError::Help(Topic::Printer));
    };
    let tokens = [global, rest].concat();
    match sub.as_str() {
        "-h" | "--help" => Ok(Command::Help(Topic::Printer)),
        "add" => leaf(Topic::PrinterAdd, &tokens, add),
        "list" | "ls" => leaf(Topic::PrinterList, &tokens, list),
        "show" => by_id(Topic::PrinterShow, &tokens, Command::PrinterShow),
        "set" => leaf(Topic::PrinterSet, &tokens, set),
        "remove" | "rm" => by_id(Topic::PrinterRemove, &tokens, Command::PrinterRemove),
        "forget-cert" => by_id(
            Topic::PrinterForgetCert,
            &tokens,
            Command::PrinterForgetCert,
        ),
        other if is_option(other) => Err(Topic::Printer.usage(
            "expected a subcommand (add, list, show, set, remove, forget-cert) before options",
        )),
        other => Err(Topic::Printer.usage(format!(
            "unknown subcommand {other:?}{}",
            did_you_mean(other, PRINTER_COMMANDS)
        ))),
    }
}

/// The options each leaf command accepts besides the global ones.
fn specs(topic: Topic) -> &'static [Flag] {
    match topic {
        Topic::Serve => SERVE,
        Topic::PrinterAdd | Topic::PrinterSet => FIELDS,
        Topic::PrinterList => LIST,
        Topic::Snapshot => SNAPSHOT,
        Topic::Test => DEMO,
        _ => NONE,
    }
}

/// `--help` anywhere wins; otherwise the options are scanned and `build`
/// makes the command.
fn leaf(
    topic: Topic,
    tokens: &[String],
    build: impl FnOnce(&Matches) -> Result<Command, CliError>,
) -> Result<Command, CliError> {
    if wants_help(tokens) {
        return Ok(Command::Help(topic));
    }
    let m = scan(topic, tokens, &[GLOBAL, specs(topic)])?;
    build(&m)
}

/// A command that takes one printer ID and the settings options.
fn by_id(
    topic: Topic,
    tokens: &[String],
    make: fn(Overrides, i64) -> Command,
) -> Result<Command, CliError> {
    leaf(topic, tokens, |m| Ok(make(overrides(m)?, m.id(topic)?)))
}

fn help(rest: &[String]) -> Result<Command, CliError> {
    let words: Vec<&str> = rest.iter().map(String::as_str).collect();
    let topic = match words.as_slice() {
        [] | ["-h" | "--help" | "help"] => Topic::Overview,
        ["serve"] => Topic::Serve,
        ["printer"] => Topic::Printer,
        ["printer", "add"] => Topic::PrinterAdd,
        ["printer", "list" | "ls"] => Topic::PrinterList,
        ["printer", "show"] => Topic::PrinterShow,
        ["printer", "set"] => Topic::PrinterSet,
        ["printer", "remove" | "rm"] => Topic::PrinterRemove,
        ["printer", "forget-cert"] => Topic::PrinterForgetCert,
        ["snapshot"] => Topic::Snapshot,
        ["test"] => Topic::Test,
        ["usb-cameras"] => Topic::UsbCameras,
        _ => return Err(Topic::Overview.usage("no help for that: try 'printcam help'")),
    };
    Ok(Command::Help(topic))
}

/// The settings flags any command may carry.
fn overrides(m: &Matches) -> Result<Overrides, CliError> {
    Ok(Overrides {
        db: m.value("db").map(PathBuf::from),
        listen: m.value("listen").map(str::to_string),
        grace: serve_value(m, "grace", parse_secs)?,
        allow_loopback: m.has("allow-loopback"),
        ffmpeg: m.value("ffmpeg").map(PathBuf::from),
        demo: m.has("demo"),
        token: serve_value(m, "token", parse_token)?,
        cors_origin: serve_value(m, "cors-origin", parse_origin)?,
        max_viewers: serve_value(m, "max-viewers", parse_count)?,
        max_viewers_per_camera: serve_value(m, "max-viewers-per-camera", parse_count)?,
        write_timeout: serve_value(m, "write-timeout", parse_timeout)?,
        max_connections_per_client: serve_value(m, "max-connections-per-client", parse_count)?,
        allowed_hosts: serve_value(m, "allow-host", parse_hosts)?,
        camera_quiet_timeout: serve_value(m, "camera-quiet-timeout", parse_timeout)?,
        printer_ca: m.value("printer-ca").map(PathBuf::from),
    })
}

/// The value of serve option `--long`, checked by `parse`.
fn serve_value<T>(
    m: &Matches,
    long: &str,
    parse: fn(&str, &str) -> Result<T, String>,
) -> Result<Option<T>, CliError> {
    m.value(long)
        .map(|v| parse(&format!("--{long}"), v).map_err(|e| Topic::Serve.usage(e)))
        .transpose()
}

fn serve(m: &Matches) -> Result<Command, CliError> {
    m.no_positionals(Topic::Serve)?;
    Ok(Command::Serve(overrides(m)?))
}

fn list(m: &Matches) -> Result<Command, CliError> {
    m.no_positionals(Topic::PrinterList)?;
    Ok(Command::PrinterList {
        opts: overrides(m)?,
        json: m.has("json"),
    })
}

fn snapshot(m: &Matches) -> Result<Command, CliError> {
    let id = m.id(Topic::Snapshot)?;
    let output = m.value("output").filter(|o| *o != "-").map(PathBuf::from);
    if output.as_deref() == Some(Path::new("")) {
        return Err(Topic::Snapshot.usage("-o needs a file name"));
    }
    Ok(Command::Snapshot {
        opts: overrides(m)?,
        id,
        output,
    })
}

fn add(m: &Matches) -> Result<Command, CliError> {
    let topic = Topic::PrinterAdd;
    m.no_positionals(topic)?;
    if !m.has("name") {
        return Err(topic.usage("--name is required"));
    }
    let fields = fields(topic, m)?;
    let mut printer = fields.apply(&Printer::default());
    // A camera URL given when adding is meant to be used.
    printer.camera_enabled = fields
        .camera_enabled
        .unwrap_or(printer.camera_url.is_some());
    Ok(Command::PrinterAdd(overrides(m)?, Box::new(printer)))
}

fn set(m: &Matches) -> Result<Command, CliError> {
    let topic = Topic::PrinterSet;
    let id = m.id(topic)?;
    let mut patch = fields(topic, m)?;
    if patch == PrinterPatch::default() {
        return Err(topic.usage("nothing to change: give at least one field option"));
    }
    imply_camera_fields(&mut patch);
    Ok(Command::PrinterSet(
        overrides(m)?,
        id,
        Box::new(Change(patch)),
    ))
}

/// Setting a camera URL switches the external camera on; clearing it clears
/// the type and switches it off. Explicit flags win.
fn imply_camera_fields(patch: &mut PrinterPatch) {
    match &patch.camera_url {
        Some(Some(_)) => {
            patch.camera_enabled.get_or_insert(true);
        }
        Some(None) => {
            patch.camera_type.get_or_insert(None);
            patch.camera_enabled.get_or_insert(false);
        }
        None => {}
    }
}

/// An empty value clears an optional field.
fn optional(v: &str) -> Option<String> {
    Some(v.to_string()).filter(|v| !v.is_empty())
}

/// The printer fields given as options, as a change; empty values clear.
fn fields(topic: Topic, m: &Matches) -> Result<PrinterPatch, CliError> {
    let text = |name: &str| m.value(name).map(optional);
    Ok(PrinterPatch {
        name: m.value("name").map(str::to_string),
        ip: text("ip"),
        access_code: text("access-code"),
        model: text("model"),
        serial: text("serial"),
        camera_port: m
            .value("camera-port")
            .map(|v| parse_port(topic, v))
            .transpose()?,
        camera_url: text("camera-url"),
        camera_type: m
            .value("camera-type")
            .map(|v| parse_camera_type(topic, v))
            .transpose()?,
        camera_enabled: camera_enabled(topic, m)?,
        camera_rotation: m
            .value("camera-rotation")
            .map(|v| parse_rotation(topic, v))
            .transpose()?,
        camera_flip: m
            .value("camera-flip")
            .map(|v| parse_flip(topic, v))
            .transpose()?,
        rtsp_client: m
            .value("rtsp-client")
            .map(|v| parse_rtsp_client(topic, v))
            .transpose()?,
    })
}

/// Degrees clockwise; an empty value is no turn.
fn parse_rotation(topic: Topic, v: &str) -> Result<Rotation, CliError> {
    if v.trim().is_empty() {
        return Ok(Rotation::R0);
    }
    v.trim()
        .parse::<i64>()
        .ok()
        .and_then(Rotation::from_degrees)
        .ok_or_else(|| topic.usage(Rotation::refusal("--camera-rotation", &format!("{v:?}"))))
}

/// A mirror's name; an empty value is none.
fn parse_flip(topic: Topic, v: &str) -> Result<Flip, CliError> {
    if v.trim().is_empty() {
        return Ok(Flip::None);
    }
    Flip::parse(v).ok_or_else(|| topic.usage(Flip::refusal("--camera-flip", &format!("{v:?}"))))
}

/// Which RTSP client reads the camera; an empty value is auto.
fn parse_rtsp_client(topic: Topic, v: &str) -> Result<RtspClient, CliError> {
    if v.trim().is_empty() {
        return Ok(RtspClient::Auto);
    }
    v.parse::<RtspClient>().map_err(|_| {
        topic.usage(format!(
            "--rtsp-client must be auto, native or ffmpeg, not {v:?}"
        ))
    })
}

fn parse_port(topic: Topic, v: &str) -> Result<Option<u16>, CliError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<u16>()
        .ok()
        .filter(|p| *p != 0)
        .map(Some)
        .ok_or_else(|| topic.usage(format!("--camera-port must be 1 to 65535, got {v:?}")))
}

fn parse_camera_type(topic: Topic, v: &str) -> Result<Option<CameraType>, CliError> {
    if v.is_empty() {
        return Ok(None);
    }
    v.parse::<CameraType>()
        .map(Some)
        .map_err(|e| topic.usage(e))
}

fn camera_enabled(topic: Topic, m: &Matches) -> Result<Option<bool>, CliError> {
    match (m.has("camera-enabled"), m.has("camera-disabled")) {
        (true, true) => Err(topic.usage("--camera-enabled and --camera-disabled contradict")),
        (true, false) => Ok(Some(true)),
        (false, true) => Ok(Some(false)),
        (false, false) => Ok(None),
    }
}

#[cfg(test)]
pub(super) mod tests {
    use super::*;
    use crate::cli::command::EXIT_USAGE;
    use crate::config::Settings;
    use std::time::Duration;

    pub(in crate::cli) fn args(line: &[&str]) -> Vec<String> {
        line.iter().map(|s| s.to_string()).collect()
    }

    fn p(line: &[&str]) -> Result<Command, CliError> {
        parse(&args(line))
    }

    fn usage_of(line: &[&str]) -> String {
        match p(line) {
            Err(CliError::Usage(m)) => m,
            other => panic!("{line:?}: expected a usage error, got {other:?}"),
        }
    }

    fn added(line: &[&str]) -> Printer {
        match p(line) {
            Ok(Command::PrinterAdd(_, printer)) => *printer,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    pub(in crate::cli) fn patch_of(line: &[&str]) -> PrinterPatch {
        match p(line) {
            Ok(Command::PrinterSet(_, _, change)) => change.0,
            other => panic!("{line:?}: {other:?}"),
        }
    }

    #[test]
    fn no_arguments_asks_for_the_overview_on_stderr() {
        assert_eq!(p(&[]), Err(CliError::Help(Topic::Overview)));
        assert_eq!(p(&["printer"]), Err(CliError::Help(Topic::Printer)));
        assert_eq!(CliError::Help(Topic::Overview).exit_code(), EXIT_USAGE);
    }

    #[test]
    fn help_and_version() {
        assert_eq!(p(&["--version"]), Ok(Command::Version));
        assert_eq!(p(&["-V"]), Ok(Command::Version));
        assert_eq!(p(&["-h"]), Ok(Command::Help(Topic::Overview)));
        assert_eq!(
            p(&["help", "printer", "set"]),
            Ok(Command::Help(Topic::PrinterSet))
        );
        assert_eq!(p(&["printer", "--help"]), Ok(Command::Help(Topic::Printer)));
        // --help wins over anything else on the line, even a bad option.
        assert_eq!(
            p(&["printer", "add", "--bogus", "-h"]),
            Ok(Command::Help(Topic::PrinterAdd))
        );
        assert_eq!(p(&["serve", "--help"]), Ok(Command::Help(Topic::Serve)));
        assert_eq!(p(&["snapshot", "-h"]), Ok(Command::Help(Topic::Snapshot)));
    }

    #[test]
    fn add_takes_both_value_forms() {
        let printer = added(&[
            "printer",
            "add",
            "--name=P1S",
            "--ip",
            "192.168.1.50",
            "--access-code=SECRETAC",
            "--model",
            "P1S",
            "--camera-port",
            "6001",
        ]);
        assert_eq!(printer.name, "P1S");
        assert_eq!(printer.ip.as_deref(), Some("192.168.1.50"));
        assert_eq!(printer.access_code.as_deref(), Some("SECRETAC"));
        assert_eq!(printer.camera_port, Some(6001));
        assert!(!printer.camera_enabled);
    }

    #[test]
    fn a_camera_url_given_to_add_is_enabled_unless_disabled() {
        let base = [
            "printer",
            "add",
            "--name",
            "Door",
            "--camera-url",
            "http://192.168.1.60/",
            "--camera-type",
            "MJPEG",
        ];
        let on = added(&base);
        assert!(on.camera_enabled);
        assert_eq!(on.camera_type, Some(CameraType::Mjpeg));
        let off = added(&[&base[..], &["--camera-disabled"]].concat());
        assert!(!off.camera_enabled);
        assert_eq!(off.camera_url.as_deref(), Some("http://192.168.1.60/"));
    }

    #[test]
    fn malformed_options_are_usage_errors() {
        assert!(usage_of(&["printer", "add"]).contains("--name is required"));
        assert!(usage_of(&["printer", "add", "--name"]).contains("--name needs a value"));
        assert!(usage_of(&["printer", "add", "--name", "--ip", "x"]).contains("needs a value"));
        assert!(
            usage_of(&["printer", "add", "--name", "a", "--name", "b"]).contains("more than once")
        );
        assert!(usage_of(&["printer", "add", "--name", "a", "--bogus"])
            .contains("unknown option --bogus"));
        let t = usage_of(&["printer", "add", "--name", "a", "--camera-type", "webcam"]);
        assert!(t.contains("unknown camera type"), "{t}");
        for port in ["0", "70000", "abc"] {
            let e = usage_of(&["printer", "add", "--name", "a", "--camera-port", port]);
            assert!(e.contains("--camera-port"), "{e}");
        }
        let both = [
            "printer",
            "add",
            "--name",
            "a",
            "--camera-enabled",
            "--camera-disabled",
        ];
        assert!(usage_of(&both).contains("contradict"));
        assert!(usage_of(&["serve", "--demo=1"]).contains("takes no value"));
        assert!(usage_of(&["serve", "--grace", "soon"]).contains("--grace"));
        assert!(usage_of(&["launch"]).contains("unknown command"));
        assert!(usage_of(&["printer", "frobnicate"]).contains("unknown subcommand"));
        assert!(usage_of(&["--bogus", "serve"]).contains("unknown option --bogus"));
        assert!(usage_of(&["--db"]).contains("needs a value"));
    }

    #[test]
    fn secrets_in_bad_options_are_not_echoed() {
        let e = usage_of(&["printer", "add", "--name", "a", "--acess-code=SECRETAC"]);
        assert!(!e.contains("SECRETAC"), "{e}");
        let e = usage_of(&["printer", "add", "--name", "a", "SECRETAC"]);
        assert!(!e.contains("SECRETAC"), "{e}");
    }

    #[test]
    fn ids_are_checked() {
        assert!(usage_of(&["printer", "show", "abc"]).contains("must be a number"));
        assert!(usage_of(&["printer", "show"]).contains("missing printer ID"));
        assert!(usage_of(&["printer", "remove", "1", "2"]).contains("one printer ID"));
        assert!(usage_of(&["test", "1.5"]).contains("must be a number"));
        assert_eq!(
            p(&["printer", "show", "--", "3"]),
            Ok(Command::PrinterShow(Overrides::default(), 3))
        );
        assert_eq!(
            p(&["printer", "forget-cert", "7"]),
            Ok(Command::PrinterForgetCert(Overrides::default(), 7))
        );
    }

    #[test]
    fn global_options_go_before_or_after_the_command() {
        let want = Overrides {
            db: Some(PathBuf::from("x.db")),
            allow_loopback: true,
            ..Overrides::default()
        };
        let list = |opts: Overrides| Ok(Command::PrinterList { opts, json: false });
        assert_eq!(
            p(&["--db", "x.db", "--allow-loopback", "printer", "list"]),
            list(want.clone())
        );
        assert_eq!(
            p(&["printer", "list", "--db=x.db", "--allow-loopback"]),
            list(want.clone())
        );
        assert_eq!(
            p(&["--db=x.db", "printer", "ls", "--allow-loopback"]),
            list(want)
        );
    }

    #[test]
    fn serve_options() {
        let Ok(Command::Serve(o)) = p(&[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--demo",
            "--grace",
            "2.5",
            "--ffmpeg",
            "/bin/ff",
        ]) else {
            panic!("serve did not parse");
        };
        assert_eq!(o.listen.as_deref(), Some("127.0.0.1:0"));
        assert!(o.demo);
        assert_eq!(o.grace, Some(Duration::from_millis(2500)));
        assert_eq!(o.ffmpeg, Some(PathBuf::from("/bin/ff")));
        assert!(usage_of(&["serve", "extra"]).contains("unexpected"));
    }

    #[test]
    fn serve_security_options() {
        let Ok(Command::Serve(o)) = p(&[
            "serve",
            "--token",
            "T0KEN-x",
            "--cors-origin=https://ha.lan:8123",
            "--max-viewers",
            "4",
            "--max-viewers-per-camera",
            "2",
            "--write-timeout",
            "1.5",
        ]) else {
            panic!("serve did not parse");
        };
        assert_eq!(o.token.as_deref(), Some("T0KEN-x"));
        assert!(!format!("{o:?}").contains("T0KEN-x"));
        let mut s = Settings::default();
        o.apply(&mut s);
        assert_eq!(s.token.as_deref(), Some("T0KEN-x"));
        assert_eq!(s.cors_origin.as_deref(), Some("https://ha.lan:8123"));
        assert_eq!((s.max_viewers, s.max_viewers_per_camera), (4, 2));
        assert_eq!(s.write_timeout, Duration::from_millis(1500));
        let e = usage_of(&["serve", "--token", "has space"]);
        assert!(e.contains("--token") && !e.contains("has space"), "{e}");
        assert!(usage_of(&["serve", "--max-viewers", "0"]).contains("--max-viewers"));
        assert!(usage_of(&["printer", "list", "--token", "x"]).contains("unknown option"));
    }

    #[test]
    fn token_comes_from_the_environment_and_the_flag_wins() {
        let env = |token: &'static str| {
            Settings::from_env(move |k| (k == "PRINTCAM_TOKEN").then(|| token.to_string())).unwrap()
        };
        assert_eq!(env("from-env").token.as_deref(), Some("from-env"));
        let Ok(Command::Serve(o)) = p(&["serve", "--token", "from-flag"]) else {
            panic!("serve did not parse");
        };
        let mut s = env("from-env");
        o.apply(&mut s);
        assert_eq!(s.token.as_deref(), Some("from-flag"));
    }

    #[test]
    fn snapshot_output() {
        let out = |line: &[&str]| match p(line) {
            Ok(Command::Snapshot { output, .. }) => output,
            other => panic!("{other:?}"),
        };
        assert_eq!(
            out(&["snapshot", "3", "-o", "a.jpg"]),
            Some(PathBuf::from("a.jpg"))
        );
        assert_eq!(
            out(&["snapshot", "--output=a.jpg", "3"]),
            Some(PathBuf::from("a.jpg"))
        );
        assert_eq!(out(&["snapshot", "3", "-o", "-"]), None);
        assert_eq!(out(&["snapshot", "3"]), None);
    }

    #[test]
    fn set_changes_only_what_is_given_and_empty_clears() {
        let patch = patch_of(&["printer", "set", "3", "--ip", "", "--model", "X1C"]);
        assert_eq!(patch.ip, Some(None));
        assert_eq!(patch.model, Some(Some("X1C".into())));
        assert_eq!(patch.name, None);
        assert_eq!(patch.access_code, None);
        assert_eq!(patch.camera_enabled, None);
        assert!(usage_of(&["printer", "set", "3"]).contains("nothing to change"));
    }

    #[test]
    fn set_camera_url_implies_the_camera_switch() {
        let on = patch_of(&["printer", "set", "3", "--camera-url", "rtsp://10.0.0.9/s"]);
        assert_eq!(on.camera_enabled, Some(true));
        assert_eq!(on.camera_type, None);
        let off = patch_of(&["printer", "set", "3", "--camera-url="]);
        assert_eq!(off.camera_url, Some(None));
        assert_eq!(off.camera_type, Some(None));
        assert_eq!(off.camera_enabled, Some(false));
        let kept_off = patch_of(&[
            "printer",
            "set",
            "3",
            "--camera-url=http://a/",
            "--camera-disabled",
        ]);
        assert_eq!(kept_off.camera_enabled, Some(false));
    }

    #[test]
    fn change_debug_hides_the_access_code() {
        let patch = patch_of(&["printer", "set", "3", "--access-code", "SECRETAC"]);
        let shown = format!("{:?}", Change(patch));
        assert!(!shown.contains("SECRETAC"), "{shown}");
    }

    #[test]
    fn flags_win_over_the_environment() {
        let env = |k: &str| match k {
            "PRINTCAM_DB" => Some("env.db".to_string()),
            "PRINTCAM_LISTEN" => Some("127.0.0.1:1".to_string()),
            _ => None,
        };
        let mut s = Settings::from_env(env).unwrap();
        Overrides {
            db: Some(PathBuf::from("flag.db")),
            ..Overrides::default()
        }
        .apply(&mut s);
        assert_eq!(s.db, PathBuf::from("flag.db"));
        assert_eq!(s.listen, "127.0.0.1:1");
    }
}
