//! The command line: a small hand-written parser (`parse`) that turns the
//! arguments into a `Command`, and `run`, which executes one against injected
//! writers so tests can capture what it prints.
//!
//! Settings come from the `PRINTCAM_*` environment first; flags override it.
//! Exit codes: 0 success, 1 a runtime failure (camera, database, refused
//! settings, unknown printer), 2 a usage error.

use crate::camera::CameraType;
use crate::cameras::{CameraKind, Cameras, TestResult};
use crate::config::{
    parse_count, parse_hosts, parse_origin, parse_secs, parse_timeout, parse_token, Settings,
};
use crate::error::Error;
use crate::orientation::{Flip, Rotation};
use crate::redact;
use crate::registry::{Printer, PrinterPatch, Registry};
use std::collections::HashMap;
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// Exit code of a runtime failure.
pub const EXIT_FAILURE: i32 = 1;
/// Exit code of a usage error.
pub const EXIT_USAGE: i32 = 2;

/// What the user asked for, fully parsed and checked for form (not content:
/// content is checked by `Cameras` when the command runs).
#[derive(Debug, Clone, PartialEq)]
pub enum Command {
    /// Print a help text to stdout.
    Help(Topic),
    Version,
    Serve(Overrides),
    PrinterAdd(Overrides, Box<Printer>),
    PrinterList {
        opts: Overrides,
        json: bool,
    },
    PrinterShow(Overrides, i64),
    PrinterSet(Overrides, i64, Box<Change>),
    PrinterRemove(Overrides, i64),
    PrinterForgetCert(Overrides, i64),
    /// `output` None or `-` means stdout.
    Snapshot {
        opts: Overrides,
        id: i64,
        output: Option<PathBuf>,
    },
    Test(Overrides, i64),
    UsbCameras,
}

/// A `PrinterPatch` that can be debug-printed without its access code.
#[derive(Clone, PartialEq, Eq)]
pub struct Change(pub PrinterPatch);

impl std::fmt::Debug for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let p = &self.0;
        f.debug_struct("PrinterPatch")
            .field("name", &p.name)
            .field("ip", &p.ip)
            .field(
                "access_code",
                &p.access_code.as_ref().map(|c| c.as_ref().map(|_| "****")),
            )
            .field("model", &p.model)
            .field("serial", &p.serial)
            .field("camera_port", &p.camera_port)
            .field(
                "camera_url",
                &p.camera_url
                    .as_ref()
                    .map(|u| u.as_deref().map(redact::url_passwords)),
            )
            .field("camera_type", &p.camera_type)
            .field("camera_enabled", &p.camera_enabled)
            .finish()
    }
}

/// Settings given as flags; they win over the environment. Its `Debug`
/// masks the token.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    pub db: Option<PathBuf>,
    pub listen: Option<String>,
    pub grace: Option<Duration>,
    pub allow_loopback: bool,
    pub ffmpeg: Option<PathBuf>,
    pub demo: bool,
    pub token: Option<String>,
    pub cors_origin: Option<String>,
    pub max_viewers: Option<usize>,
    pub max_viewers_per_camera: Option<usize>,
    pub write_timeout: Option<Duration>,
    pub max_connections_per_client: Option<usize>,
    pub allowed_hosts: Option<Vec<String>>,
    pub camera_quiet_timeout: Option<Duration>,
    pub printer_ca: Option<PathBuf>,
}

impl std::fmt::Debug for Overrides {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Overrides")
            .field("db", &self.db)
            .field("listen", &self.listen)
            .field("grace", &self.grace)
            .field("allow_loopback", &self.allow_loopback)
            .field("ffmpeg", &self.ffmpeg)
            .field("demo", &self.demo)
            .field("token", &crate::config::mask(&self.token))
            .field("cors_origin", &self.cors_origin)
            .field("max_viewers", &self.max_viewers)
            .field("max_viewers_per_camera", &self.max_viewers_per_camera)
            .field("write_timeout", &self.write_timeout)
            .field(
                "max_connections_per_client",
                &self.max_connections_per_client,
            )
            .field("allowed_hosts", &self.allowed_hosts)
            .field("camera_quiet_timeout", &self.camera_quiet_timeout)
            .field("printer_ca", &self.printer_ca)
            .finish()
    }
}

impl Overrides {
    pub fn apply(&self, s: &mut Settings) {
        if let Some(db) = &self.db {
            s.db = db.clone();
        }
        if let Some(listen) = &self.listen {
            s.listen = listen.clone();
        }
        if let Some(grace) = self.grace {
            s.grace = grace;
        }
        if let Some(ffmpeg) = &self.ffmpeg {
            s.ffmpeg = Some(ffmpeg.clone());
        }
        if let Some(token) = &self.token {
            s.token = Some(token.clone());
        }
        if let Some(origin) = &self.cors_origin {
            s.cors_origin = Some(origin.clone());
        }
        if let Some(n) = self.max_viewers {
            s.max_viewers = n;
        }
        if let Some(n) = self.max_viewers_per_camera {
            s.max_viewers_per_camera = n;
        }
        if let Some(t) = self.write_timeout {
            s.write_timeout = t;
        }
        if let Some(n) = self.max_connections_per_client {
            s.max_connections_per_client = n;
        }
        if let Some(hosts) = &self.allowed_hosts {
            s.allowed_hosts = hosts.clone();
        }
        if let Some(t) = self.camera_quiet_timeout {
            s.camera_quiet_timeout = t;
        }
        if let Some(ca) = &self.printer_ca {
            s.printer_ca = Some(ca.clone());
        }
        s.allow_loopback |= self.allow_loopback;
        s.demo |= self.demo;
    }
}

/// Why a command did not succeed; `run` prints it and picks the exit code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CliError {
    /// Malformed command line (exit 2).
    Usage(String),
    /// The command ran and failed (exit 1).
    Failed(String),
    /// Not enough to go on: print this help to stderr (exit 2).
    Help(Topic),
}

impl CliError {
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Failed(_) => EXIT_FAILURE,
            CliError::Usage(_) | CliError::Help(_) => EXIT_USAGE,
        }
    }
}

impl From<Error> for CliError {
    /// Input printcam refuses (a missing access code, a bad URL) is a usage
    /// error like a missing flag: exit 2. What failed while running is 1.
    fn from(e: Error) -> Self {
        match e {
            Error::Invalid(m) => CliError::Usage(m),
            other => CliError::Failed(other.message().to_string()),
        }
    }
}

/// Each command's help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Overview,
    Serve,
    Printer,
    PrinterAdd,
    PrinterList,
    PrinterShow,
    PrinterSet,
    PrinterRemove,
    PrinterForgetCert,
    Snapshot,
    Test,
    UsbCameras,
}

impl Topic {
    /// The command as typed after `printcam`, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Overview => "",
            Topic::Serve => "serve",
            Topic::Printer => "printer",
            Topic::PrinterAdd => "printer add",
            Topic::PrinterList => "printer list",
            Topic::PrinterShow => "printer show",
            Topic::PrinterSet => "printer set",
            Topic::PrinterRemove => "printer remove",
            Topic::PrinterForgetCert => "printer forget-cert",
            Topic::Snapshot => "snapshot",
            Topic::Test => "test",
            Topic::UsbCameras => "usb-cameras",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Topic::Overview => HELP_OVERVIEW,
            Topic::Serve => HELP_SERVE,
            Topic::Printer => HELP_PRINTER,
            Topic::PrinterAdd => HELP_ADD,
            Topic::PrinterList => HELP_LIST,
            Topic::PrinterShow => HELP_SHOW,
            Topic::PrinterSet => HELP_SET,
            Topic::PrinterRemove => HELP_REMOVE,
            Topic::PrinterForgetCert => HELP_FORGET_CERT,
            Topic::Snapshot => HELP_SNAPSHOT,
            Topic::Test => HELP_TEST,
            Topic::UsbCameras => HELP_USB,
        }
    }

    fn usage(self, msg: impl std::fmt::Display) -> CliError {
        let name = self.name();
        if name.is_empty() {
            CliError::Usage(format!("{msg} (see 'printcam --help')"))
        } else {
            CliError::Usage(format!("{name}: {msg} (see 'printcam {name} --help')"))
        }
    }
}

// ---------------------------------------------------------------- flags

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

// ---------------------------------------------------------------- running

/// Reads an environment variable.
pub type EnvVar = Box<dyn Fn(&str) -> Option<String>>;

/// What a command needs from the process besides its writers.
pub struct Context {
    pub var: EnvVar,
    /// Whether stdout is a terminal (binary output is refused there).
    pub stdout_is_terminal: bool,
    /// Reads one line from stdin (`--access-code -`), without echo on a
    /// terminal.
    pub read_line: LineReader,
    /// Whether stdin is a terminal (a person to prompt).
    pub stdin_is_terminal: bool,
}

/// Reads one line of input.
pub type LineReader = Box<dyn Fn() -> io::Result<String>>;

impl Context {
    pub fn from_process() -> Context {
        Context {
            var: Box::new(|k| std::env::var(k).ok()),
            stdout_is_terminal: io::stdout().is_terminal(),
            read_line: Box::new(read_line),
            stdin_is_terminal: io::stdin().is_terminal(),
        }
    }
}

fn read_line() -> io::Result<String> {
    let mut line = String::new();
    io::stdin().read_line(&mut line).map(|_| line)
}

/// The binary's entry point: arguments (program name first) to exit code.
pub fn main(args: Vec<OsString>) -> i32 {
    let ctx = Context::from_process();
    // Unlocked handles: `serve` runs for long and other threads log to stderr.
    let (mut out, mut err) = (io::stdout(), io::stderr());
    match utf8_args(args).and_then(|a| parse(a.get(1..).unwrap_or(&[]))) {
        Ok(cmd) => run(cmd, &ctx, &mut out, &mut err),
        Err(e) => report(&e, &mut err),
    }
}

fn utf8_args(args: Vec<OsString>) -> Result<Vec<String>, CliError> {
    args.into_iter()
        .enumerate()
        .map(|(i, a)| {
            a.into_string()
                .map_err(|_| Topic::Overview.usage(format!("argument {i} is not valid UTF-8")))
        })
        .collect()
}

/// Executes `cmd`; returns the exit code.
pub fn run(cmd: Command, ctx: &Context, out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    match execute(cmd, ctx, out, err) {
        Ok(code) => code,
        Err(e) => report(&e, err),
    }
}

/// Prints an error as one line (or a help text) on stderr.
fn report(e: &CliError, err: &mut dyn Write) -> i32 {
    // Nothing sensible is left to do if stderr itself fails.
    let _ = match e {
        CliError::Usage(m) | CliError::Failed(m) => {
            writeln!(err, "printcam: error: {}", one_line(m))
        }
        CliError::Help(topic) => err.write_all(topic.text().as_bytes()),
    };
    e.exit_code()
}

fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn execute(
    cmd: Command,
    ctx: &Context,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> Result<i32, CliError> {
    match cmd {
        Command::Help(topic) => write_out(out, topic.text().as_bytes())?,
        Command::Version => {
            let line = format!("printcam {}\n", env!("CARGO_PKG_VERSION"));
            write_out(out, line.as_bytes())?
        }
        Command::Serve(opts) => serve_now(&opts, ctx, err)?,
        Command::PrinterAdd(opts, mut p) => {
            code_from_stdin(&mut p.access_code, ctx, err)?;
            let saved = cameras(&opts, ctx, true)?.add(&p)?;
            warn(err, &saved.warnings);
            write_out(out, format!("{}\n", saved.value).as_bytes())?
        }
        Command::PrinterList { opts, json } => {
            let printers = cameras(&opts, ctx, false)?.printers()?;
            let text = if json {
                list_json(&printers)
            } else {
                list_table(&printers)
            };
            write_out(out, text.as_bytes())?
        }
        Command::PrinterShow(opts, id) => {
            let p = cameras(&opts, ctx, false)?.printer(id)?;
            write_out(out, show(&p).as_bytes())?
        }
        Command::PrinterSet(opts, id, mut patch) => {
            if let Some(code) = &mut patch.0.access_code {
                code_from_stdin(code, ctx, err)?;
            }
            let cameras = cameras(&opts, ctx, false)?;
            ask_code_if_moved(&cameras, id, &mut patch.0, ctx, err)?;
            warn(err, &cameras.update(id, &patch.0)?.warnings);
            write_out(out, format!("printer {id} updated\n").as_bytes())?
        }
        Command::PrinterRemove(opts, id) => {
            cameras(&opts, ctx, false)?.remove_printer(id)?;
            write_out(out, format!("printer {id} removed\n").as_bytes())?
        }
        Command::PrinterForgetCert(opts, id) => {
            cameras(&opts, ctx, false)?.forget_cert(id)?;
            let line = format!(
                "printer {id}: certificate forgotten; the next connection pins the one it sees\n"
            );
            write_out(out, line.as_bytes())?
        }
        Command::Snapshot { opts, id, output } => {
            snapshot_now(&opts, ctx, id, output, Output { out, err })?
        }
        Command::Test(opts, id) => return test_now(&opts, ctx, id, Output { out, err }),
        Command::UsbCameras => usb_cameras_now(out)?,
    }
    Ok(0)
}

/// `--access-code -` reads the code from stdin, keeping it out of the
/// process list and the shell history; on a terminal it asks for it (and
/// the terminal does not show what is typed).
fn code_from_stdin(
    code: &mut Option<String>,
    ctx: &Context,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    if code.as_deref() != Some(STDIN) {
        return Ok(());
    }
    let prompt = "Access code (shown on the printer's screen; not echoed): ";
    *code = Some(ask_code(ctx, err, ctx.stdin_is_terminal.then_some(prompt))?);
    Ok(())
}

/// Reads an access code, first asking with `prompt`. On a terminal the
/// echo is off before the prompt shows, so nothing typed after it appears.
fn ask_code(ctx: &Context, err: &mut dyn Write, prompt: Option<&str>) -> Result<String, CliError> {
    let quiet = ctx
        .stdin_is_terminal
        .then(crate::terminal::EchoOff::on_stdin)
        .flatten();
    if let Some(prompt) = prompt {
        let asked = write!(err, "{prompt}").and_then(|()| err.flush());
        asked.map_err(|e| CliError::Failed(format!("could not ask for the access code: {e}")))?;
    }
    let code = read_code(ctx);
    if quiet.is_some() {
        // The Enter the user typed was not echoed either.
        let _ = writeln!(err);
    }
    code
}

/// One line of stdin, without its line end, as an access code.
fn read_code(ctx: &Context) -> Result<String, CliError> {
    let line = (ctx.read_line)()
        .map_err(|e| CliError::Failed(format!("could not read the access code from stdin: {e}")))?;
    let line = line.trim_end_matches(['\r', '\n']);
    if line.is_empty() {
        return Err(CliError::Failed("no access code on stdin".into()));
    }
    Ok(line.to_string())
}

/// A change of a printer's address or port must carry its access code (the
/// stored one is not sent to a new address): asks for it when not given.
fn ask_code_if_moved(
    cameras: &Cameras,
    id: i64,
    patch: &mut PrinterPatch,
    ctx: &Context,
    err: &mut dyn Write,
) -> Result<(), CliError> {
    if patch.access_code.is_some() {
        return Ok(());
    }
    let old = cameras.printer(id)?;
    let new = patch.apply(&old);
    if new.ip.is_none() || !crate::cameras::moves_printer(&old, &new) {
        return Ok(());
    }
    let prompt = "printcam: the printer's address or port changes, so its access code is \
                  needed again (the stored one is not sent to a new address): ";
    patch.access_code = Some(Some(ask_code(ctx, err, Some(prompt))?));
    Ok(())
}

/// Prints each warning as `printcam: warning: …` on stderr.
fn warn(err: &mut dyn Write, warnings: &[String]) {
    for w in warnings {
        // Nothing sensible is left to do if stderr itself fails.
        let _ = writeln!(
            err,
            "printcam: warning: {}",
            one_line(&redact::url_passwords(w))
        );
    }
}

/// The value that means "read it from stdin".
const STDIN: &str = "-";

fn write_out(out: &mut dyn Write, bytes: &[u8]) -> Result<(), CliError> {
    out.write_all(bytes)
        .and_then(|_| out.flush())
        .map_err(|e| CliError::Failed(format!("could not write the output: {e}")))
}

fn settings(opts: &Overrides, ctx: &Context) -> Result<Settings, CliError> {
    let mut s = Settings::from_env(&ctx.var).map_err(|e| Topic::Overview.usage(e))?;
    opts.apply(&mut s);
    Ok(s)
}

/// The cameras of the registry `opts` and the environment name. Only
/// commands that add may create the database: elsewhere a missing file is
/// a mistyped path.
fn cameras(opts: &Overrides, ctx: &Context, create: bool) -> Result<Arc<Cameras>, CliError> {
    let s = settings(opts, ctx)?;
    if !create && !s.db.exists() {
        return Err(CliError::Failed(format!(
            "database {} does not exist (give the right --db, or add a printer first)",
            s.db.display()
        )));
    }
    let registry = Registry::open(&s.db)?;
    Ok(Cameras::new(Arc::new(registry), s))
}

fn usb_cameras_now(out: &mut dyn Write) -> Result<(), CliError> {
    let cams = crate::ffmpeg::list_usb_cameras();
    let written = if cams.is_empty() {
        writeln!(out, "no /dev/video* devices")
    } else {
        cams.iter().try_for_each(|c| {
            let name = c.name.as_deref().unwrap_or("-");
            let driver = c.driver.as_deref().unwrap_or("-");
            writeln!(
                out,
                "{}\t{}\t{}",
                c.device,
                printable(name),
                printable(driver)
            )
        })
    };
    written.map_err(|e| CliError::Failed(format!("cannot write the list: {e}")))
}

fn serve_now(opts: &Overrides, ctx: &Context, err: &mut dyn Write) -> Result<(), CliError> {
    crate::logging::init("info");
    // Before any thread starts, so every thread inherits the blocked mask
    // and only the signal thread receives the stop signals.
    crate::signals::block_stop_signals()
        .map_err(|e| CliError::Failed(format!("cannot set up signal handling: {e}")))?;
    let s = settings(opts, ctx)?;
    if s.demo && !crate::sources::demo::available() {
        return Err(CliError::Failed(
            crate::sources::demo::UNAVAILABLE.to_string(),
        ));
    }
    let explicit_db = opts.db.is_some() || (ctx.var)("PRINTCAM_DB").is_some_and(|v| !v.is_empty());
    let in_memory = s.demo && !explicit_db;
    let registry = if in_memory {
        let _ = writeln!(
            err,
            "printcam: demo mode with an in-memory database (give --db to keep printers)"
        );
        Registry::open_in_memory()?
    } else {
        Registry::open(&s.db)?
    };
    if let Some(why) = registry.read_only() {
        log::warn!(
            "database {} is read-only ({why}): printers cannot be added, changed or removed \
             and certificate pins cannot be stored until it is writable",
            s.db.display()
        );
    }
    let listen = s.listen.clone();
    let publish = (!in_memory).then(|| (s.db.clone(), s.token.clone()));
    let cameras = Cameras::new(Arc::new(registry), s);
    let server = crate::http::Server::start(Arc::clone(&cameras), &listen)
        .map(Arc::new)
        .map_err(|e| CliError::Failed(one_line(&e)))?;
    let stopper = Arc::clone(&server);
    crate::signals::on_stop_signal(move |signal| {
        log::info!("{signal}: shutting down");
        stopper.shutdown();
    })
    .map_err(|e| CliError::Failed(format!("cannot start the signal thread: {e}")))?;
    let published = publish.and_then(|(db, token)| publish_server(&db, server.addr(), token));
    let _ = writeln!(err, "printcam: listening on http://{}", server.addr());
    server.wait();
    // Before the cameras close: a CLI must not ask a server that is going.
    drop(published);
    server.shutdown();
    cameras.shutdown();
    log::info!("stopped");
    Ok(())
}

/// Where `snapshot` and `test` tell what they did.
struct Output<'a> {
    out: &'a mut dyn Write,
    err: &'a mut dyn Write,
}

/// Writes `<db>.server` so the CLI finds this server; a failure only costs
/// the CLI's use of it.
fn publish_server(
    db: &Path,
    addr: std::net::SocketAddr,
    token: Option<String>,
) -> Option<crate::running::Published> {
    match crate::running::publish(db, addr, token) {
        Ok(p) => {
            log::info!(
                "wrote {} (printcam snapshot and test on this database go through this server)",
                p.path().display()
            );
            Some(p)
        }
        Err(e) => {
            log::warn!(
                "could not write {}: {e}; printcam snapshot and test will connect to the cameras \
                 themselves",
                crate::running::file_for(db).display()
            );
            None
        }
    }
}

/// The server running on this command's database, unless the command is
/// for the demo camera (this process's own). A server file whose server
/// does not listen any more is reported on stderr and passed over.
fn running_server(
    opts: &Overrides,
    ctx: &Context,
    id: i64,
) -> Result<Option<(crate::running::Running, Duration)>, CliError> {
    let s = settings(opts, ctx)?;
    if id == crate::cameras::DEMO_ID && s.demo {
        return Ok(None);
    }
    // The server waits up to its own snapshot timeout for a frame.
    let wait = s.snapshot_timeout + ASK_MARGIN;
    Ok(crate::running::find(&s.db).map(|r| (r, wait)))
}

/// Beyond the server's snapshot timeout (the CLI's own default, unless set).
const ASK_MARGIN: Duration = Duration::from_secs(15);

/// Maps what asking the server gave: a result, an error, or None to go on
/// directly (nothing listens where the server file says).
fn asked<T>(
    answer: Result<T, crate::running::AskError>,
    server: &crate::running::Running,
    err: &mut dyn Write,
) -> Result<Option<T>, CliError> {
    match answer {
        Ok(v) => Ok(Some(v)),
        Err(crate::running::AskError::Failed(m)) => Err(CliError::Failed(m)),
        Err(crate::running::AskError::NotListening) => {
            let _ = writeln!(
                err,
                "printcam: warning: the server of this database (pid {}) does not listen on {}; \
                 connecting to the camera directly",
                server.pid,
                server.reach()
            );
            Ok(None)
        }
    }
}

fn snapshot_now(
    opts: &Overrides,
    ctx: &Context,
    id: i64,
    output: Option<PathBuf>,
    to: Output<'_>,
) -> Result<(), CliError> {
    if output.is_none() && ctx.stdout_is_terminal {
        return Err(Topic::Snapshot
            .usage("refusing to write a JPEG to a terminal: give -o FILE or redirect stdout"));
    }
    crate::logging::init("error");
    let through_server = match running_server(opts, ctx, id)? {
        Some((server, wait)) => asked(server.snapshot(id, wait), &server, to.err)?,
        None => None,
    };
    let jpeg: std::sync::Arc<[u8]> = match through_server {
        Some(jpeg) => jpeg.into(),
        None => {
            let cameras = cameras(opts, ctx, false)?;
            let frame = cameras.snapshot(id);
            cameras.shutdown();
            frame?.jpeg
        }
    };
    match output {
        Some(path) => write_atomically(&path, &jpeg),
        None => write_out(to.out, &jpeg),
    }
}

/// Writes through a temporary file in the same directory and renames it, so
/// the file is never seen half-written.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let fail = |e: io::Error| CliError::Failed(format!("could not write {}: {e}", path.display()));
    let name = path
        .file_name()
        .ok_or_else(|| CliError::Failed(format!("{} is not a file name", path.display())))?;
    let mut tmp_name = OsString::from(".");
    tmp_name.push(name);
    tmp_name.push(format!(".tmp-{}", std::process::id()));
    let tmp = path.with_file_name(tmp_name);
    let written = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&tmp)
        .and_then(|mut f| f.write_all(bytes).and_then(|_| f.sync_all()))
        .and_then(|_| fs::rename(&tmp, path));
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(fail(e));
    }
    Ok(())
}

fn test_now(opts: &Overrides, ctx: &Context, id: i64, to: Output<'_>) -> Result<i32, CliError> {
    crate::logging::init("error");
    let through_server = match running_server(opts, ctx, id)? {
        Some((server, wait)) => asked(server.test(id, wait), &server, to.err)?,
        None => None,
    };
    let result = match through_server {
        Some(answer) => test_from_json(&answer),
        None => {
            let cameras = cameras(opts, ctx, false)?;
            let result = cameras.test(id);
            cameras.shutdown();
            result?
        }
    };
    write_out(to.out, test_line(&result).as_bytes())?;
    Ok(if result.success { 0 } else { EXIT_FAILURE })
}

/// The server's test answer (`GET /printers/{id}/camera/test`) as the
/// fields `test_line` prints.
fn test_from_json(v: &crate::json::Value) -> TestResult {
    let text = |k: &str| {
        v.get(k)
            .and_then(crate::json::Value::as_str)
            .map(String::from)
    };
    let success = v.get("success").and_then(crate::json::Value::as_bool) == Some(true);
    TestResult {
        success,
        resolution: text("resolution"),
        error: text("error").or_else(|| (!success).then(|| format!("the server answered {v}"))),
        camera: "",
        detected: false,
    }
}

fn test_line(r: &TestResult) -> String {
    match (r.success, &r.resolution, &r.error) {
        (true, Some(res), _) => format!("ok: {res}\n"),
        (true, None, _) => "ok\n".to_string(),
        (false, _, e) => format!("failed: {}\n", one_line(e.as_deref().unwrap_or("unknown"))),
    }
}

// ---------------------------------------------------------------- output

/// Control characters (terminal escapes in a name) shown harmlessly.
fn printable(s: &str) -> String {
    s.chars()
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// Where the printer's camera is: the external URL (password hidden) when it
/// is used, else the printer's address.
fn address(p: &Printer) -> String {
    match (CameraKind::of(p), &p.camera_url, &p.ip) {
        (CameraKind::External(_), Some(url), _) => redact::url_passwords(url),
        (_, _, Some(ip)) => match p.camera_port {
            Some(port) => crate::sources::label(ip, port),
            None if ip.contains(':') => format!("[{ip}]"),
            None => ip.clone(),
        },
        _ => "-".to_string(),
    }
}

fn list_table(printers: &[Printer]) -> String {
    let mut rows = vec![["ID", "NAME", "CAMERA", "ADDRESS"].map(String::from)];
    rows.extend(printers.iter().map(|p| {
        [
            p.id.to_string(),
            p.name.clone(),
            CameraKind::of(p).as_str().to_string(),
            address(p),
        ]
        .map(|s| printable(&s))
    }));
    let width = |col: usize| rows.iter().map(|r| r[col].chars().count()).max();
    let widths: Vec<usize> = (0..3).map(|c| width(c).unwrap_or(0)).collect();
    let mut text = String::new();
    for row in &rows {
        for (cell, w) in row.iter().zip(&widths) {
            text.push_str(&format!("{cell:<w$}  "));
        }
        text.push_str(&row[3]);
        text.push('\n');
    }
    text
}

fn or_dash(v: &Option<String>) -> String {
    v.as_deref().map_or("-".to_string(), printable)
}

/// One field a line; the access code only as set / not set.
fn show(p: &Printer) -> String {
    let kind = CameraKind::of(p);
    let port = match (p.camera_port, &kind) {
        (Some(port), _) => port.to_string(),
        (None, CameraKind::BuiltIn(b)) => format!("{} (default)", b.default_port()),
        (None, CameraKind::Undetected) => "322 or 6000 (defaults)".to_string(),
        (None, _) => "-".to_string(),
    };
    let camera = match (&kind, crate::cameras::camera_detected(p)) {
        (_, true) => format!("{} (detected: the model is not known)", kind.as_str()),
        (CameraKind::Undetected, _) => {
            "undetected (the model is not known: both kinds are tried on first use)".to_string()
        }
        _ => kind.as_str().to_string(),
    };
    let lines = [
        ("id", p.id.to_string()),
        ("name", printable(&p.name)),
        ("camera", camera),
        ("ip", or_dash(&p.ip)),
        (
            "access code",
            set_or_not(p.access_code.is_some()).to_string(),
        ),
        ("model", or_dash(&p.model)),
        ("serial", or_dash(&p.serial)),
        ("camera port", port),
        (
            "camera url",
            or_dash(&p.camera_url.as_deref().map(redact::url_passwords)),
        ),
        (
            "camera type",
            or_dash(&p.camera_type.map(|t| t.to_string())),
        ),
        ("external camera", external_state(p).to_string()),
        ("camera rotation", rotation_line(p.camera_rotation)),
        ("camera flip", p.camera_flip.to_string()),
        ("certificate pin", or_dash(&p.cert_sha256)),
        ("certificate", p.cert_trust().unwrap_or("-").to_string()),
    ];
    lines
        .iter()
        .map(|(k, v)| format!("{:<17}{v}\n", format!("{k}:")))
        .collect()
}

fn rotation_line(r: Rotation) -> String {
    match r {
        Rotation::R0 => "0".to_string(),
        turned => format!("{turned} (degrees clockwise)"),
    }
}

/// Whether the external camera is the one served.
fn external_state(p: &Printer) -> &'static str {
    match (&p.camera_url, p.camera_enabled) {
        (None, _) => "-",
        (Some(_), true) => "enabled",
        (Some(_), false) => "disabled (the built-in camera is used)",
    }
}

fn set_or_not(b: bool) -> &'static str {
    if b {
        "set"
    } else {
        "not set"
    }
}

/// The printers as the API lists them (no access code, URL passwords masked).
fn list_json(printers: &[Printer]) -> String {
    let all = printers
        .iter()
        .map(crate::http::printers::to_json)
        .collect();
    format!("{}\n", crate::json::Value::Array(all))
}

// ---------------------------------------------------------------- help

const HELP_OVERVIEW: &str = "\
printcam — serve 3D printer cameras as MJPEG streams and JPEG snapshots

Usage: printcam [GLOBAL OPTIONS] COMMAND [OPTIONS]

Commands:
  serve                  run the HTTP server
  printer add|list|show|set|remove|forget-cert
                         manage the registered printers and cameras
  snapshot ID            save one JPEG from a printer's camera
  test ID                check that a printer's camera answers
  usb-cameras            list the USB (V4L2) cameras on this box
  help [COMMAND]         show help for a command

Global options (before or after the command):
  --db PATH              the printer database (default printcam.db; env PRINTCAM_DB)
  --allow-loopback       allow camera URLs on this box (env PRINTCAM_ALLOW_LOOPBACK)
  --ffmpeg PATH          the ffmpeg to run (env PRINTCAM_FFMPEG; default: search PATH)
  -h, --help             show help (also after any command)
  -V, --version          show the version

Flags win over the environment. Options take a value as '--flag value' or '--flag=value'.
Exit status: 0 success, 1 failure, 2 bad usage.

Example:
  printcam printer add --name P1S --ip 192.168.1.50 --access-code - --model P1S
  printcam serve --listen 0.0.0.0:8080
";

const HELP_SERVE: &str = "\
Usage: printcam serve [OPTIONS]

Runs the HTTP server until it is stopped. Logs go to stderr (RUST_LOG, default info).

Options:
  --listen ADDR          address to listen on (default 0.0.0.0:8080; env PRINTCAM_LISTEN)
  --db PATH              the printer database (default printcam.db; env PRINTCAM_DB)
  --demo                 serve a built-in demo camera as printer 0; without --db (or
                         PRINTCAM_DB) the database is kept in memory only
  --grace SECS           keep a camera open this long after its last viewer (default 5;
                         env PRINTCAM_GRACE)
  --allow-loopback       allow camera URLs on this box (env PRINTCAM_ALLOW_LOOPBACK)
  --ffmpeg PATH          the ffmpeg to run (env PRINTCAM_FFMPEG)
  --token TOKEN          require this token (?token= or Authorization: Bearer) on every
                         endpoint but /healthz; prefer env PRINTCAM_TOKEN, which the
                         process list does not show
  --cors-origin ORIGIN   send Access-Control-Allow-Origin: ORIGIN, and accept changes from
                         pages of that origin (env PRINTCAM_CORS_ORIGIN)
  --allow-host NAMES     comma-separated host names, beside IP addresses, localhost and
                         this machine's name, that changes may be sent to (env
                         PRINTCAM_ALLOW_HOSTS)
  --max-viewers N        streams open at once, all cameras (default 100; env
                         PRINTCAM_MAX_VIEWERS)
  --max-viewers-per-camera N
                         streams open at once per camera (default 25; env
                         PRINTCAM_MAX_VIEWERS_PER_CAMERA)
  --max-connections-per-client N
                         connections one client address holds at once (default 32;
                         raise it behind a reverse proxy; env
                         PRINTCAM_MAX_CONNECTIONS_PER_CLIENT)
  --write-timeout SECS   drop a client that takes no data for this long (default 10;
                         env PRINTCAM_WRITE_TIMEOUT)
  --camera-quiet-timeout SECS
                         reconnect a P1/A1 chamber camera that sends no frame for this
                         long (default 30; env PRINTCAM_CAMERA_QUIET_TIMEOUT)
  --printer-ca FILE      PEM file of further CA certificates to check printers'
                         certificates against, beside Bambu's (env PRINTCAM_PRINTER_CA)
  -h, --help             show this help

Example:
  printcam serve --listen 127.0.0.1:8080 --db /etc/printcam/printcam.db
";

const HELP_PRINTER: &str = "\
Usage: printcam printer SUBCOMMAND [OPTIONS]

Subcommands:
  add                    register a printer or an external camera; prints the new ID
  list (ls)              list the printers (--json for JSON)
  show ID                show one printer's settings
  set ID                 change a printer's settings
  remove (rm) ID         delete a printer
  forget-cert ID         forget the printer's pinned TLS certificate

Each takes --db PATH and -h/--help.

Example:
  printcam printer list --db /etc/printcam/printcam.db
";

const HELP_ADD: &str = "\
Usage: printcam printer add --name NAME [FIELDS]

Registers a printer and prints its new ID alone on stdout.

Fields:
  --name NAME            a name to show (required)
  --ip ADDR              a Bambu Lab printer's address (needs --access-code)
  --access-code CODE     the printer's LAN access code (shown on its screen);
                         '-' reads it from stdin
  --model MODEL          the printer model (X1C, P1S, Bambu Lab H2D, N2S, …): picks the
                         camera protocol; without one (or an unknown one) the camera
                         is detected on first use
  --serial SERIAL        the printer's serial number
  --camera-port PORT     replace the built-in camera's port (6000 or 322)
  --camera-url URL       an external camera: http(s) URL, rtsp(s) URL or /dev/videoN
  --camera-type TYPE     the external camera's type: mjpeg, snapshot, rtsp or usb
  --camera-enabled       use the external camera (the default when --camera-url is given)
  --camera-disabled      store the external camera but keep using the built-in one
  --camera-rotation DEG  turn the picture for display: 0, 90, 180 or 270 (clockwise)
  --camera-flip FLIP     mirror it first: none, horizontal or vertical

Options:
  --db PATH              the printer database (created if missing)
  --allow-loopback       allow camera URLs on this box
  -h, --help             show this help

A code typed on the command line stays in your shell's history and shows in
the process list: prefer '--access-code -' and type or pipe it in.

--camera-rotation and --camera-flip tag every JPEG frame (EXIF Orientation):
browsers show the picture turned, nothing is re-encoded.

Examples:
  printcam printer add --name P1S --ip 192.168.1.50 --access-code - --model P1S
  printcam printer add --name Door --camera-url http://192.168.1.60/stream --camera-type mjpeg
";

const HELP_LIST: &str = "\
Usage: printcam printer list [--json]

Lists the printers: ID, name, camera kind and address (camera URL passwords hidden;
access codes are never shown).

Options:
  --json                 print a JSON array instead of a table
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer list --json
";

const HELP_SHOW: &str = "\
Usage: printcam printer show ID

Shows one printer's settings, one per line. The access code is shown only as
'set' or 'not set'; camera URL passwords are hidden.

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer show 3
";

const HELP_SET: &str = "\
Usage: printcam printer set ID [FIELDS]

Changes the given fields and leaves the others as they are. An EMPTY value
clears a field: --ip \"\" removes the printer address, --camera-url \"\" removes
the external camera (and its type, and switches it off). Giving a camera URL
switches the external camera on unless --camera-disabled is given too.

Fields:
  --name NAME            a name to show
  --ip ADDR              a Bambu Lab printer's address (needs an access code)
  --access-code CODE     the printer's LAN access code; '-' reads it from stdin
  --model MODEL          the printer model (X1C, P1S, A1, …)
  --serial SERIAL        the printer's serial number
  --camera-port PORT     replace the built-in camera's port
  --camera-url URL       an external camera: http(s) URL, rtsp(s) URL or /dev/videoN
  --camera-type TYPE     mjpeg, snapshot, rtsp or usb
  --camera-enabled       use the external camera
  --camera-disabled      use the built-in camera, keep the external one stored
  --camera-rotation DEG  turn the picture for display: 0, 90, 180 or 270 (clockwise)
  --camera-flip FLIP     mirror it first: none, horizontal or vertical

Options:
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  -h, --help             show this help

Examples:
  printcam printer set 3 --access-code - < code.txt
  printcam printer set 3 --camera-url \"\"
";

const HELP_REMOVE: &str = "\
Usage: printcam printer remove ID

Deletes a printer and its camera settings.

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer remove 3
";

const HELP_FORGET_CERT: &str = "\
Usage: printcam printer forget-cert ID

Forgets the TLS certificate pinned on the printer's first connection, so the
next connection pins the certificate it sees (after a printer was replaced or
its certificate renewed).

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer forget-cert 3
";

const HELP_SNAPSHOT: &str = "\
Usage: printcam snapshot ID [-o FILE]

Writes one JPEG from the printer's camera to FILE, or to stdout when it is not
a terminal. While 'printcam serve' runs on the same database (it writes
DB.server beside it), the JPEG comes through that server and its one camera
connection; otherwise printcam connects to the camera itself.

Options:
  -o, --output FILE      write to FILE (replaced atomically); '-' means stdout
  --demo                 ID 0 is the built-in demo camera
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  --ffmpeg PATH          the ffmpeg to run
  -h, --help             show this help

Example:
  printcam snapshot 3 -o now.jpg
";

const HELP_USB: &str = "\
Usage: printcam usb-cameras

Lists the V4L2 devices (/dev/video0 to /dev/video99) a usb camera can use,
with their name and driver when v4l2-ctl is installed.

Example:
  printcam usb-cameras
  printcam printer add --name Bench --camera-url /dev/video0 --camera-type usb
";

const HELP_TEST: &str = "\
Usage: printcam test ID

Checks the printer's camera and reports 'ok: WIDTHxHEIGHT' or 'failed: why'.
Exits 0 when the camera answered, 1 when it did not. While 'printcam serve'
runs on the same database (it writes DB.server beside it), the test goes
through that server and its one camera connection; otherwise printcam
connects to the camera itself.

Options:
  --demo                 ID 0 is the built-in demo camera
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  --ffmpeg PATH          the ffmpeg to run
  -h, --help             show this help

Example:
  printcam test 3
";

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    fn args(line: &[&str]) -> Vec<String> {
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

    fn patch_of(line: &[&str]) -> PrinterPatch {
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
    fn every_help_text_has_usage_and_an_example() {
        let topics = [
            Topic::Overview,
            Topic::Serve,
            Topic::Printer,
            Topic::PrinterAdd,
            Topic::PrinterList,
            Topic::PrinterShow,
            Topic::PrinterSet,
            Topic::PrinterRemove,
            Topic::PrinterForgetCert,
            Topic::Snapshot,
            Topic::Test,
        ];
        for t in topics {
            assert!(t.text().contains("Usage: printcam"), "{t:?}");
            assert!(t.text().contains("Example"), "{t:?}");
            assert!(
                t.text().contains(&format!("printcam {}", t.name())),
                "{t:?}"
            );
        }
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

    // ------------------------------------------------------------ running

    const STDIN_CODE: &str = "FROMSTD4";

    struct TestDir(PathBuf);

    impl TestDir {
        fn new() -> TestDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let n = N.fetch_add(1, Ordering::Relaxed);
            let dir = std::env::temp_dir().join(format!("printcam-cli-{}-{n}", std::process::id()));
            fs::create_dir_all(&dir).unwrap();
            TestDir(dir)
        }

        fn db(&self) -> String {
            self.0.join("p.db").display().to_string()
        }
    }

    impl Drop for TestDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn ctx(env: &[(&'static str, String)], terminal: bool) -> Context {
        let env = env.to_vec();
        Context {
            var: Box::new(move |k| env.iter().find(|(n, _)| *n == k).map(|(_, v)| v.clone())),
            stdout_is_terminal: terminal,
            read_line: Box::new(|| Ok(format!("{STDIN_CODE}\n"))),
            stdin_is_terminal: false,
        }
    }

    /// Parses and runs one command line: (exit code, stdout, stderr).
    fn exec(c: &Context, line: &[&str]) -> (i32, String, String) {
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let code = match parse(&args(line)) {
            Ok(cmd) => run(cmd, c, &mut out, &mut err),
            Err(e) => report(&e, &mut err),
        };
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (code, text(out), text(err))
    }

    #[test]
    fn add_list_show_never_print_the_access_code() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let add = [
            "printer",
            "add",
            "--name",
            "P1S",
            "--ip",
            "192.168.1.50",
            "--access-code",
            "SECRETAC",
        ];
        assert_eq!(exec(&c, &add), (0, "1\n".to_string(), String::new()));
        for line in [
            &["printer", "list"][..],
            &["printer", "list", "--json"],
            &["printer", "show", "1"],
        ] {
            let (code, out, err) = exec(&c, line);
            assert_eq!(code, 0, "{line:?}: {err}");
            assert!(out.contains("P1S"), "{out}");
            assert!(
                !out.contains("SECRETAC") && !err.contains("SECRETAC"),
                "{out}"
            );
        }
        let (_, show, _) = exec(&c, &["printer", "show", "1"]);
        assert!(show.contains("access code:     set"), "{show}");
    }

    #[test]
    fn a_dash_reads_the_access_code_from_stdin() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let add = [
            "printer",
            "add",
            "--name",
            "a",
            "--ip",
            "10.0.0.5",
            "--access-code",
            "-",
        ];
        assert_eq!(exec(&c, &add).0, 0);
        let stored = |id| {
            Registry::open(Path::new(&dir.db()))
                .unwrap()
                .get(id)
                .unwrap()
                .unwrap()
        };
        assert_eq!(stored(1).access_code.as_deref(), Some(STDIN_CODE));
        exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                "b",
                "--ip",
                "10.0.0.6",
                "--access-code",
                "x",
            ],
        );
        assert_eq!(exec(&c, &["printer", "set", "2", "--access-code=-"]).0, 0);
        assert_eq!(stored(2).access_code.as_deref(), Some(STDIN_CODE));
    }

    #[test]
    fn the_db_flag_wins_over_the_environment() {
        let (env_dir, flag_dir) = (TestDir::new(), TestDir::new());
        let c = ctx(&[("PRINTCAM_DB", env_dir.db())], false);
        let db = flag_dir.db();
        assert_eq!(
            exec(&c, &["printer", "add", "--name", "a", "--db", &db]).0,
            0
        );
        assert!(Path::new(&db).exists());
        assert!(!Path::new(&env_dir.db()).exists());
    }

    #[test]
    fn runtime_errors_are_one_line_and_exit_1() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let (code, _, err) = exec(&c, &["printer", "show", "1"]);
        assert_eq!(code, 1);
        assert!(err.contains("does not exist"), "{err}");
        exec(&c, &["printer", "add", "--name", "a"]);
        let (code, out, err) = exec(&c, &["printer", "remove", "9"]);
        assert_eq!((code, out.as_str()), (1, ""));
        assert_eq!(err, "printcam: error: Printer not found\n");
    }

    #[test]
    fn refused_input_is_a_usage_error_like_a_missing_flag() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let (code, _, err) = exec(&c, &["printer", "add", "--name", "b", "--ip", "10.0.0.5"]);
        assert_eq!(code, 2);
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.contains("access code"), "{err}");
        assert_eq!(exec(&c, &["printer", "add", "--ip", "10.0.0.5"]).0, 2);
    }

    #[test]
    fn set_remove_and_forget_cert_say_what_they_did() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        assert_eq!(exec(&c, &["printer", "add", "--name", "a"]).0, 0);
        let said = |line: &[&str]| exec(&c, line).1;
        assert_eq!(
            said(&["printer", "set", "1", "--name", "b"]),
            "printer 1 updated\n"
        );
        assert!(
            said(&["printer", "forget-cert", "1"]).starts_with("printer 1: certificate forgotten")
        );
        assert_eq!(said(&["printer", "remove", "1"]), "printer 1 removed\n");
    }

    #[test]
    fn odd_codes_and_repeated_names_are_saved_with_a_warning() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let add = |name: &str, code: &str| {
            exec(
                &c,
                &[
                    "printer",
                    "add",
                    "--name",
                    name,
                    "--ip",
                    "10.0.0.5",
                    "--access-code",
                    code,
                ],
            )
        };
        let (code, _, err) = add("left", "1234");
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("warning: the access code has 4 characters"),
            "{err}"
        );
        assert!(!err.contains("1234"), "the code was shown: {err}");
        let (code, _, err) = add("Left", "12345678");
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("printer 1 is also called \"left\""), "{err}");
        assert_eq!(add("right", "12345678").2, "");
        let (code, _, err) = exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                "new",
                "--ip",
                "10.0.0.7",
                "--access-code",
                "12345678",
                "--model",
                "Z9 Ultra",
            ],
        );
        assert_eq!(code, 0, "{err}");
        assert!(
            err.contains("model \"Z9 Ultra\" is not one printcam knows"),
            "{err}"
        );
    }

    #[test]
    fn unknown_commands_get_a_suggestion() {
        let err = |line: &[&str]| exec(&ctx(&[], false), line).2;
        assert!(err(&["prnter", "list"]).contains("did you mean \"printer\""));
        assert!(err(&["snap", "1"]).contains("did you mean \"snapshot\""));
        assert!(err(&["printer", "lst"]).contains("did you mean \"list\""));
        assert!(!err(&["zzzzzzz"]).contains("did you mean"));
        assert_eq!(exec(&ctx(&[], false), &["help", "--help"]).0, 0);
    }

    #[test]
    fn show_says_which_camera_is_served() {
        let builtin = Printer {
            id: 1,
            name: "p1s".into(),
            ip: Some("10.0.0.5".into()),
            access_code: Some("12345678".into()),
            ..Printer::default()
        };
        assert!(
            show(&builtin).contains("external camera: -"),
            "{}",
            show(&builtin)
        );
        let off = Printer {
            camera_url: Some("http://10.0.0.6/s".into()),
            camera_type: Some(CameraType::Mjpeg),
            ..builtin.clone()
        };
        assert!(show(&off).contains("disabled (the built-in camera is used)"));
    }

    #[test]
    fn usage_errors_are_one_line_and_exit_2() {
        let c = ctx(&[], false);
        let (code, out, err) = exec(&c, &["printer", "show", "abc"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert_eq!(err.lines().count(), 1, "{err}");
        assert!(err.starts_with("printcam: error: "), "{err}");
    }

    #[test]
    fn rotation_and_flip_are_set_shown_and_checked() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        let (code, _, err) = exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                "side",
                "--camera-rotation",
                "90",
                "--camera-flip",
                "Horizontal",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let p = stored_printer(&dir, 1);
        assert_eq!(
            (p.camera_rotation, p.camera_flip),
            (Rotation::R90, Flip::Horizontal)
        );
        let (_, out, _) = exec(&c, &["printer", "show", "1"]);
        assert!(
            out.contains("camera rotation: 90 (degrees clockwise)\n"),
            "{out}"
        );
        assert!(out.contains("camera flip:     horizontal\n"), "{out}");
        for (flag, bad) in [
            ("--camera-rotation", "45"),
            ("--camera-rotation", "ninety"),
            ("--camera-flip", "diagonal"),
        ] {
            let (code, out, err) = exec(&c, &["printer", "set", "1", flag, bad]);
            assert_eq!((code, out.as_str()), (2, ""), "{flag} {bad}");
            assert!(err.contains(flag) && err.contains(bad), "{err}");
        }
        let (code, _, err) = exec(
            &c,
            &[
                "printer",
                "set",
                "1",
                "--camera-rotation",
                "270",
                "--camera-flip",
                "",
            ],
        );
        assert_eq!(code, 0, "{err}");
        let p = stored_printer(&dir, 1);
        assert_eq!(
            (p.camera_rotation, p.camera_flip),
            (Rotation::R270, Flip::None)
        );
        assert_eq!(
            patch_of(&["printer", "set", "1", "--camera-rotation", ""]).camera_rotation,
            Some(Rotation::R0)
        );
        let (_, out, _) = exec(&c, &["printer", "show", "1"]);
        assert!(out.contains("camera flip:     none\n"), "{out}");
    }

    /// `printer add` of a printer called `a` at `ip`.
    fn add_line<'a>(ip: &'a str, code: &'a str) -> [&'a str; 8] {
        [
            "printer",
            "add",
            "--name",
            "a",
            "--ip",
            ip,
            "--access-code",
            code,
        ]
    }

    fn stored_printer(dir: &TestDir, id: i64) -> Printer {
        Registry::open(Path::new(&dir.db()))
            .unwrap()
            .get(id)
            .unwrap()
            .unwrap()
    }

    #[test]
    fn a_host_that_does_not_resolve_is_added_with_a_warning() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        // RFC 6761: .invalid never resolves.
        let (code, out, err) = exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                "door",
                "--camera-type",
                "mjpeg",
                "--camera-url",
                "http://admin:s3cretpw@cam.invalid:8081/?action=stream",
            ],
        );
        assert_eq!((code, out.as_str()), (0, "1\n"), "{err}");
        assert!(err.starts_with("printcam: warning: "), "{err}");
        assert!(
            err.contains("cam.invalid") && !err.contains("s3cretpw"),
            "{err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        // A name that resolves to loopback is refused (no --allow-loopback).
        let (code, _, err) = exec(&c, &add_line("localhost", "x1x1x1x1"));
        assert_eq!(code, 2, "{err}");
        assert!(
            err.contains("loopback") && err.contains("--allow-loopback"),
            "{err}"
        );
    }

    #[test]
    fn moving_a_printer_asks_for_its_access_code() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        assert_eq!(exec(&c, &add_line("10.0.0.5", "x1x1x1x1")).0, 0);
        let (code, _, err) = exec(&c, &["printer", "set", "1", "--ip", "10.0.0.6"]);
        assert_eq!(code, 0, "{err}");
        assert!(err.contains("access code is needed again"), "{err}");
        let p = stored_printer(&dir, 1);
        assert_eq!(p.ip.as_deref(), Some("10.0.0.6"));
        assert_eq!(p.access_code.as_deref(), Some(STDIN_CODE));
        // No answer: nothing changes.
        let silent = Context {
            read_line: Box::new(|| Ok(String::new())),
            ..ctx(&[("PRINTCAM_DB", dir.db())], false)
        };
        let (code, _, err) = exec(&silent, &["printer", "set", "1", "--camera-port", "6001"]);
        assert_eq!(code, 1, "{err}");
        assert_eq!(stored_printer(&dir, 1).camera_port, None);
        // Given in the same change, or not moving: no question.
        let line = [
            "printer",
            "set",
            "1",
            "--camera-port",
            "6001",
            "--access-code",
            "x2x2x2x2",
        ];
        assert_eq!(
            exec(&silent, &line),
            (0, "printer 1 updated\n".to_string(), String::new())
        );
        assert_eq!(
            stored_printer(&dir, 1).access_code.as_deref(),
            Some("x2x2x2x2")
        );
        let line = [
            "printer",
            "set",
            "1",
            "--name",
            "b",
            "--camera-port",
            "6001",
        ];
        assert_eq!(
            exec(&silent, &line),
            (0, "printer 1 updated\n".to_string(), String::new())
        );
    }

    #[test]
    fn list_and_show_mask_secret_query_values_and_user_names() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        for url in [
            "http://10.0.0.9/video.cgi?user=admin&pwd=Hunter2pw",
            "http://APIKEY123456@10.0.0.9/stream",
        ] {
            let line = [
                "printer",
                "add",
                "--name",
                "c",
                "--camera-type",
                "mjpeg",
                "--camera-url",
                url,
            ];
            assert_eq!(exec(&c, &line).0, 0);
        }
        for line in [
            &["printer", "list"][..],
            &["printer", "list", "--json"],
            &["printer", "show", "1"],
            &["printer", "show", "2"],
        ] {
            let (code, out, err) = exec(&c, line);
            assert_eq!(code, 0, "{err}");
            assert!(
                !out.contains("Hunter2pw") && !out.contains("APIKEY123456"),
                "{out}"
            );
        }
    }

    #[test]
    fn set_and_remove() {
        let dir = TestDir::new();
        let c = ctx(&[("PRINTCAM_DB", dir.db())], false);
        exec(
            &c,
            &[
                "printer",
                "add",
                "--name",
                "a",
                "--ip",
                "10.0.0.5",
                "--access-code",
                "x1x1x1x1",
            ],
        );
        assert_eq!(exec(&c, &["printer", "set", "1", "--name", "renamed"]).0, 0);
        let (_, show, _) = exec(&c, &["printer", "show", "1"]);
        assert!(
            show.contains("renamed") && show.contains("10.0.0.5"),
            "{show}"
        );
        assert_eq!(exec(&c, &["printer", "forget-cert", "1"]).0, 0);
        assert_eq!(exec(&c, &["printer", "remove", "1"]).0, 0);
        assert_eq!(exec(&c, &["printer", "show", "1"]).0, 1);
    }

    #[test]
    fn snapshot_refuses_a_terminal_before_connecting() {
        let c = ctx(&[("PRINTCAM_DB", "/nonexistent/p.db".into())], true);
        let (code, out, err) = exec(&c, &["snapshot", "1"]);
        assert_eq!((code, out.as_str()), (2, ""));
        assert!(err.contains("terminal"), "{err}");
    }

    #[test]
    fn atomic_write_leaves_only_the_file() {
        let dir = TestDir::new();
        let path = dir.0.join("a.jpg");
        write_atomically(&path, b"one").unwrap();
        write_atomically(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        assert_eq!(fs::read_dir(&dir.0).unwrap().count(), 1);
        assert!(write_atomically(&dir.0.join("no/such/dir.jpg"), b"x").is_err());
    }

    #[test]
    fn output_is_escaped() {
        assert_eq!(printable("x\u{1b}[31my"), "x?[31my");
        let p = Printer {
            id: 4,
            name: "Door".into(),
            camera_url: Some("rtsp://u:SECRETPW@10.0.0.9/s".into()),
            camera_type: Some(CameraType::Rtsp),
            camera_enabled: true,
            ..Printer::default()
        };
        for text in [
            list_table(std::slice::from_ref(&p)),
            list_json(std::slice::from_ref(&p)),
            show(&p),
        ] {
            assert!(!text.contains("SECRETPW"), "{text}");
            assert!(text.contains("rtsp://u:****@10.0.0.9/s"), "{text}");
        }
        assert_eq!(list_json(&[]), "[]\n");
    }

    #[test]
    fn ipv6_printer_addresses_are_shown_in_brackets() {
        let p = Printer {
            id: 1,
            name: "v6".into(),
            ip: Some("fd00::50".into()),
            access_code: Some("12345678".into()),
            model: Some("P1S".into()),
            ..Printer::default()
        };
        assert_eq!(address(&p), "[fd00::50]");
        let on_port = Printer {
            camera_port: Some(6000),
            ..p.clone()
        };
        assert_eq!(address(&on_port), "[fd00::50]:6000");
        assert!(list_table(&[on_port]).contains(" [fd00::50]:6000\n"));
        let v4 = Printer {
            ip: Some("192.168.1.50".into()),
            camera_port: Some(322),
            ..p
        };
        assert_eq!(address(&v4), "192.168.1.50:322");
    }

    #[test]
    fn show_says_how_the_camera_kind_is_known() {
        let line = |p: &Printer| {
            show(p)
                .lines()
                .find(|l| l.starts_with("camera:"))
                .unwrap()
                .to_string()
        };
        let unknown = Printer {
            id: 1,
            name: "p".into(),
            ip: Some("192.168.1.9".into()),
            access_code: Some("12345678".into()),
            ..Printer::default()
        };
        assert!(line(&unknown).contains("undetected"), "{}", line(&unknown));
        let detected = Printer {
            detected_camera: Some(crate::camera::BuiltIn::Rtsps),
            ..unknown.clone()
        };
        assert!(
            line(&detected).ends_with("rtsps (detected: the model is not known)"),
            "{}",
            line(&detected)
        );
        let known = Printer {
            model: Some("Bambu Lab P1S".into()),
            ..unknown
        };
        assert!(line(&known).ends_with(" chamber"), "{}", line(&known));
    }

    #[test]
    fn test_lines() {
        let ok = TestResult {
            success: true,
            resolution: Some("1280x720".into()),
            error: None,
            camera: "chamber",
            detected: false,
        };
        assert_eq!(test_line(&ok), "ok: 1280x720\n");
        let failed = TestResult {
            success: false,
            resolution: None,
            error: Some("no\nframe".into()),
            camera: "undetected",
            detected: false,
        };
        assert_eq!(test_line(&failed), "failed: no frame\n");
    }
}
