//! The size settings that live outside Cargo.toml's profile stay in step:
//! the OpenWrt package repeats `.cargo/config.toml`'s SQLite flags (cargo
//! does not read that file in the SDK), and names only features that exist.

use std::fs;
use std::path::Path;

fn read(path: &str) -> String {
    let full = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
    fs::read_to_string(&full).unwrap_or_else(|e| panic!("{}: {e}", full.display()))
}

/// The value of the first line `NAME<sep>VALUE`, quotes trimmed.
fn setting(text: &str, name: &str, sep: &str) -> String {
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.trim_start().strip_prefix(sep))
        .map(|v| v.trim().trim_matches('"').to_string())
        .unwrap_or_else(|| panic!("no {name}{sep} line"))
}

#[test]
fn openwrt_builds_sqlite_with_the_same_flags_as_cargo_config() {
    let config = setting(&read(".cargo/config.toml"), "LIBSQLITE3_FLAGS", "=");
    let makefile = read("openwrt/Makefile");
    assert_eq!(setting(&makefile, "PRINTCAM_SQLITE_FLAGS", ":="), config);
    assert!(
        makefile.contains(r#"CARGO_PKG_VARS+=LIBSQLITE3_FLAGS="$(PRINTCAM_SQLITE_FLAGS)""#),
        "the Makefile no longer hands the flags to cargo"
    );
    for flag in config.split_whitespace() {
        assert!(
            flag.starts_with("-DSQLITE_") || flag.starts_with("-USQLITE_"),
            "{flag}: libsqlite3-sys takes -D/-U flags"
        );
    }
}

#[test]
fn openwrt_asks_for_features_that_exist() {
    let cargo = read("Cargo.toml");
    let features = cargo
        .split("[features]")
        .nth(1)
        .and_then(|rest| rest.split("\n[").next())
        .expect("a [features] table");
    let makefile = read("openwrt/Makefile");
    let asked: Vec<&str> = makefile
        .lines()
        .filter_map(|l| l.trim().strip_prefix("RUST_PKG_FEATURES:="))
        .flat_map(|v| v.split([',', ' ']).filter(|f| !f.is_empty()))
        .collect();
    assert_eq!(asked, ["system-sqlite", "bundled-sqlite"]);
    for feature in asked {
        assert!(
            features
                .lines()
                .any(|l| l.starts_with(&format!("{feature} ="))),
            "openwrt/Makefile asks for {feature}, which Cargo.toml does not define"
        );
    }
    // The package builds without the default features (no demo, no public
    // CA certificates): the Makefile must keep saying so.
    assert!(makefile.contains("$(call Build/Compile/Cargo,,--no-default-features)"));
}

/// MIPS32 routers (mipsel-unknown-linux-musl) have no 64-bit atomics: code
/// that uses them does not build there, which no test on x86_64 would
/// otherwise notice.
#[test]
fn no_64_bit_atomics_in_the_program() {
    fn walk(dir: &Path, found: &mut Vec<String>) {
        for entry in fs::read_dir(dir).unwrap().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, found);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = fs::read_to_string(&path).unwrap();
                for (i, line) in text.lines().enumerate() {
                    if line.contains("AtomicU64") || line.contains("AtomicI64") {
                        found.push(format!("{}:{}", path.display(), i + 1));
                    }
                }
            }
        }
    }
    let mut found = Vec::new();
    walk(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        &mut found,
    );
    assert!(
        found.is_empty(),
        "64-bit atomics (no MIPS32 build): {found:?}"
    );
}
