//! Executing a parsed command against injected writers, so tests can
//! capture what it prints.

use super::args::parse;
use super::command::{CliError, Command, Overrides, EXIT_FAILURE};
use super::help::Topic;
use super::table::{list_json, list_table, printable, show};
use crate::cameras::{Cameras, TestResult};
use crate::config::Settings;
use crate::redact;
use crate::registry::{PrinterPatch, Registry};
use std::ffi::OsString;
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

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

#[cfg(test)]
mod tests;
