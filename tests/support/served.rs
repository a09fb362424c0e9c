//! The real printcam binary as a child process, for tests of signals and
//! of what it logs.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

/// The real binary serving on an ephemeral port, stderr captured.
pub struct Served {
    pub child: Child,
    pub addr: SocketAddr,
    /// What it wrote to stderr up to "listening on".
    pub before_listening: Vec<String>,
    lines: mpsc::Receiver<String>,
    /// What it wrote before it said where it listens.
    early: Vec<String>,
}

impl Served {
    /// `printcam serve --listen 127.0.0.1:0 ARGS…` with `envs` added.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Served {
        Served::spawn(&mut Served::command(args, envs))
    }

    /// The command `start` runs, for a test to change (its user, say).
    pub fn command(args: &[&str], envs: &[(&str, &str)]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_printcam"));
        cmd.args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("PRINTCAM_DB")
            .envs(envs.iter().copied());
        cmd
    }

    /// Runs `cmd` (from `command`) and waits until it listens.
    pub fn spawn(cmd: &mut Command) -> Served {
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("printcam starts");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, lines) = mpsc::channel();
        thread::Builder::new()
            .name("stderr".into())
            .spawn(move || {
                for line in BufReader::new(stderr).lines() {
                    let Ok(line) = line else { break };
                    if tx.send(line).is_err() {
                        break;
                    }
                }
            })
            .unwrap();
        let mut served = Served {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            before_listening: Vec::new(),
            lines,
            early: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = served
                .lines
                .recv_timeout(left)
                .expect("printcam says where it listens");
            served.before_listening.push(line.clone());
            if let Some(addr) = line.strip_prefix("printcam: listening on http://") {
                served.addr = addr.trim().parse().expect("an address");
                return served;
            }
            served.early.push(line);
        }
    }

    /// Sends `signal`.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory effects; pid is our own unreaped child.
        unsafe { libc::kill(pid, signal) };
    }

    /// SIGTERM, wait for the exit, and everything it wrote to stderr.
    pub fn stop(self) -> String {
        self.stop_with(libc::SIGTERM)
    }

    /// Sends `signal`, waits for a clean exit (asserted), and returns
    /// everything it wrote to stderr.
    pub fn stop_with(mut self, signal: libc::c_int) -> String {
        self.signal(signal);
        let deadline = Instant::now() + Duration::from_secs(30);
        let status = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break Some(status);
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(50));
        };
        let mut all = self.early.join("\n");
        if !all.is_empty() {
            all.push('\n');
        }
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(5)) {
            all.push_str(&line);
            all.push('\n');
        }
        assert!(status.is_some_and(|s| s.success()), "no clean exit:\n{all}");
        all
    }
}
