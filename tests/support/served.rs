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
    lines: mpsc::Receiver<String>,
    /// What it wrote before it said where it listens.
    early: Vec<String>,
}

impl Served {
    /// `printcam serve --listen 127.0.0.1:0 ARGS…` with `envs` added.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Served {
        let mut child = Command::new(env!("CARGO_BIN_EXE_printcam"))
            .args(["serve", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("PRINTCAM_DB")
            .envs(envs.iter().copied())
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
            if let Some(addr) = line.strip_prefix("printcam: listening on http://") {
                served.addr = addr.trim().parse().expect("an address");
                return served;
            }
            served.early.push(line);
        }
    }

    /// Sends SIGTERM.
    pub fn terminate(&self) {
        let pid = libc::pid_t::try_from(self.child.id()).unwrap();
        // SAFETY: kill has no memory effects; pid is our own unreaped child.
        unsafe { libc::kill(pid, libc::SIGTERM) };
    }

    /// SIGTERM, wait for the exit, and everything it wrote to stderr.
    pub fn stop(mut self) -> String {
        self.terminate();
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
