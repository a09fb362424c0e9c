//! SIGTERM, SIGINT, SIGHUP and SIGQUIT as an orderly shutdown: the signals
//! are blocked in every thread and received by one named thread with
//! `sigwait`, so no code runs in signal-handler context. SIGHUP (the
//! terminal went away, or an init system's "reload") and SIGQUIT would
//! otherwise kill printcam at once, leaving ffmpeg children behind; printcam
//! has no configuration to reload, so both stop it as SIGTERM does.

use std::io;
use std::thread::JoinHandle;

/// The signals that ask printcam to stop, with the names it logs.
const STOP_SIGNALS: [(libc::c_int, &str); 4] = [
    (libc::SIGTERM, "SIGTERM"),
    (libc::SIGINT, "SIGINT"),
    (libc::SIGHUP, "SIGHUP"),
    (libc::SIGQUIT, "SIGQUIT"),
];

fn name(sig: libc::c_int) -> &'static str {
    STOP_SIGNALS
        .iter()
        .find(|(s, _)| *s == sig)
        .map_or("a stop signal", |(_, n)| n)
}

fn stop_set() -> libc::sigset_t {
    // SAFETY: sigemptyset/sigaddset initialise and fill a set we own.
    unsafe {
        let mut set: libc::sigset_t = std::mem::zeroed();
        libc::sigemptyset(&mut set);
        for (sig, _) in STOP_SIGNALS {
            libc::sigaddset(&mut set, sig);
        }
        set
    }
}

/// Blocks the stop signals in the calling thread and in every thread it
/// starts afterwards. Call before starting any other thread.
pub fn block_stop_signals() -> io::Result<()> {
    let set = stop_set();
    // SAFETY: pthread_sigmask with a valid set and no old-set output.
    let rc = unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, &set, std::ptr::null_mut()) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::from_raw_os_error(rc))
    }
}

/// Starts a thread that waits for a stop signal and then calls
/// `on_stop` with the signal's name, once.
pub fn on_stop_signal(
    on_stop: impl FnOnce(&'static str) + Send + 'static,
) -> io::Result<JoinHandle<()>> {
    crate::sync::spawn("signals".into(), Some(64 * 1024), move || {
        let set = stop_set();
        let mut sig: libc::c_int = 0;
        // SAFETY: sigwait on a valid set, writing into a local.
        let rc = unsafe { libc::sigwait(&set, &mut sig) };
        if rc != 0 {
            log::error!(
                "cannot wait for signals: {}",
                io::Error::from_raw_os_error(rc)
            );
            return;
        }
        on_stop(name(sig));
    })
}
