//! Bounds glibc's malloc arenas. glibc gives each new thread that allocates
//! an arena of its own, up to eight per core, and an arena keeps the memory
//! freed into it; printcam starts a thread per connection, so
//! months of clients coming and going grew anonymous memory in steps (a
//! churn soak: 816 KB to 1 680 KB in 15 minutes) although nothing leaked.
//! One arena stayed flat in the same soak. A user cannot be expected to set
//! `MALLOC_ARENA_MAX`, so printcam sets it itself. musl has one heap and no
//! such setting.

/// The arena limit printcam sets: all threads share the main arena.
pub const ARENA_MAX: i32 = 1;

/// Sets glibc's arena limit to [`ARENA_MAX`]. Call first thing in `main`,
/// before any thread starts: arenas made before it are kept. Elsewhere a
/// no-op.
pub fn bound_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes allocator tuning; it has no memory
        // effects on the caller and is safe to call at any time.
        let ok = unsafe { libc::mallopt(libc::M_ARENA_MAX, ARENA_MAX) };
        if ok != 1 {
            // Nothing is logged yet this early; the server still works,
            // only its memory may grow in steps.
            eprintln!("printcam: could not bound glibc's malloc arenas (mallopt failed)");
        }
    }
}
