//! Packs the binary's relative relocations (DT_RELR, `-z pack-relative-relocs`)
//! where that is known to be safe: ~65 KB less `.rela.dyn` on x86_64, which
//! the loader also has less to apply at start-up (README, "Sizes").
//!
//! Only for native glibc builds on x86_64 and aarch64 whose glibc is 2.36 or
//! newer: the linker marks such a binary as needing glibc's
//! `GLIBC_ABI_DT_RELR`, which older glibc lacks (it would refuse to start the
//! binary), and binutils packs only on those two architectures. A cross
//! build cannot ask the target's glibc here, so it goes without; so does any
//! build with `PRINTCAM_NO_RELR` set.

use std::env;

fn main() {
    println!("cargo:rerun-if-env-changed=PRINTCAM_NO_RELR");
    println!("cargo:rerun-if-changed=build.rs");
    let var = |name: &str| env::var(name).unwrap_or_default();
    let native = var("TARGET") == var("HOST");
    let glibc = var("CARGO_CFG_TARGET_OS") == "linux" && var("CARGO_CFG_TARGET_ENV") == "gnu";
    let arch = matches!(var("CARGO_CFG_TARGET_ARCH").as_str(), "x86_64" | "aarch64");
    if native && glibc && arch && env::var_os("PRINTCAM_NO_RELR").is_none() && host_glibc_has_relr()
    {
        println!("cargo:rustc-link-arg-bins=-Wl,-z,pack-relative-relocs");
    }
}

/// Whether the glibc this build script runs on (the target's, for a native
/// build) is 2.36 or newer.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn host_glibc_has_relr() -> bool {
    use std::ffi::{c_char, CStr};
    extern "C" {
        fn gnu_get_libc_version() -> *const c_char;
    }
    // SAFETY: glibc returns a pointer to a static NUL-terminated string.
    let version = unsafe { CStr::from_ptr(gnu_get_libc_version()) };
    let version = version.to_str().unwrap_or("");
    let mut parts = version.split('.').map(|p| p.parse::<u32>().unwrap_or(0));
    let major = parts.next().unwrap_or(0);
    let minor = parts.next().unwrap_or(0);
    (major, minor) >= (2, 36)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn host_glibc_has_relr() -> bool {
    false
}
