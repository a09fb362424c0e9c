//! The command line: a small hand-written parser (`parse`) that turns the
//! arguments into a `Command`, and `run`, which executes one against injected
//! writers so tests can capture what it prints.
//!
//! Settings come from the `PRINTCAM_*` environment first; flags override it.
//! Exit codes: 0 success, 1 a runtime failure (camera, database, refused
//! settings, unknown printer), 2 a usage error.

// The files depend one way: help and table on nothing here, command on
// help, args on command and help, run on all of them; this file only
// re-exports.
mod args;
mod command;
mod help;
mod run;
mod table;

pub use args::parse;
pub use command::{Change, CliError, Command, Overrides, EXIT_FAILURE, EXIT_USAGE};
pub use help::Topic;
pub use run::{main, run, write_atomically, Context, EnvVar, LineReader};
