//! Named threads and poison-tolerant locks, the same way everywhere.

use std::io;
use std::sync::{Mutex, MutexGuard};
use std::thread::{Builder, JoinHandle};

/// Linux keeps 15 bytes of a thread's name (`top`, `ps -L`, `/proc`); a
/// longer one is cut, and two threads may then show under one name.
pub const MAX_THREAD_NAME: usize = 15;

/// A thread builder named `name`. The name must fit Linux's limit: tests
/// catch a longer one (debug builds stop at it), release builds cut it.
pub fn named(name: String) -> Builder {
    debug_assert!(
        name.len() <= MAX_THREAD_NAME,
        "thread name {name:?} is longer than {MAX_THREAD_NAME} bytes"
    );
    Builder::new().name(fit(name))
}

/// Starts a thread named `name` (see `named`), optionally with its own
/// stack size.
pub fn spawn<F, T>(name: String, stack: Option<usize>, f: F) -> io::Result<JoinHandle<T>>
where
    F: FnOnce() -> T + Send + 'static,
    T: Send + 'static,
{
    let mut builder = named(name);
    if let Some(size) = stack {
        builder = builder.stack_size(size);
    }
    builder.spawn(f)
}

fn fit(mut name: String) -> String {
    while name.len() > MAX_THREAD_NAME {
        name.pop();
    }
    name
}

/// Locks `m`, also when a thread panicked while holding it: printcam's
/// shared state stays usable (counters at worst slightly off), and serving
/// on beats taking every viewer of a camera down.
pub fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_thread_gets_its_name() {
        let t = spawn("sync-test".into(), None, || {
            std::thread::current().name().map(str::to_string)
        })
        .unwrap();
        assert_eq!(t.join().unwrap().as_deref(), Some("sync-test"));
    }

    #[test]
    fn long_names_are_cut_to_what_linux_keeps() {
        assert_eq!(fit("rtsps-proxy-65535-down".into()), "rtsps-proxy-655");
        let cut = fit("été-été-été-été".into());
        assert!(cut.len() <= MAX_THREAD_NAME && "été-été-été-été".starts_with(&cut));
    }

    #[test]
    fn a_poisoned_lock_still_locks() {
        let m = std::sync::Arc::new(Mutex::new(1));
        let m2 = m.clone();
        let _ = std::thread::spawn(move || {
            let _g = m2.lock().unwrap();
            panic!("poison it");
        })
        .join();
        assert!(m.lock().is_err());
        *lock(&m) += 1;
        assert_eq!(*lock(&m), 2);
    }
}
