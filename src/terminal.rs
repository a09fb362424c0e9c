//! The terminal's echo, turned off while a secret is typed.

use std::io::IsTerminal;

/// Echo off on stdin's terminal until dropped.
pub struct EchoOff {
    before: libc::termios,
}

impl EchoOff {
    /// None when stdin is no terminal (a pipe, a file): nothing to hide.
    pub fn on_stdin() -> Option<EchoOff> {
        if !std::io::stdin().is_terminal() {
            return None;
        }
        // SAFETY: an all-zero termios is a valid buffer for tcgetattr.
        let mut before: libc::termios = unsafe { std::mem::zeroed() };
        // SAFETY: fd 0 is open; `before` is a valid termios to fill.
        if unsafe { libc::tcgetattr(0, &mut before) } != 0 {
            return None;
        }
        let mut quiet = before;
        quiet.c_lflag &= !libc::ECHO;
        // SAFETY: fd 0 is a terminal; `quiet` is a valid termios.
        if unsafe { libc::tcsetattr(0, libc::TCSANOW, &quiet) } != 0 {
            return None;
        }
        Some(EchoOff { before })
    }
}

impl Drop for EchoOff {
    fn drop(&mut self) {
        // SAFETY: restores the settings read from the same terminal.
        unsafe { libc::tcsetattr(0, libc::TCSANOW, &self.before) };
    }
}
