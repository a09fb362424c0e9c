//! The one rule for programs a test needs (tests/support/programs.rs):
//! missing under CI fails the test, missing elsewhere skips it with a
//! message naming the package.

#[path = "support/programs.rs"]
mod programs;

use std::ffi::OsStr;
use std::process::Command;

const NO_SUCH: &str = "printcam-test-no-such-program";
const PACKAGE: &str = "printcam-test-package";

#[test]
fn the_verdict_fails_under_ci_and_skips_naming_the_package_elsewhere() {
    for ci in ["true", "1", ""] {
        let fail = programs::missing_verdict(Some(OsStr::new(ci)), NO_SUCH, PACKAGE).unwrap_err();
        assert!(fail.contains(NO_SUCH) && fail.contains(PACKAGE), "{fail}");
    }
    let skip = programs::missing_verdict(None, NO_SUCH, PACKAGE).unwrap();
    assert!(skip.starts_with("SKIPPED: "), "{skip}");
    assert!(skip.contains(NO_SUCH) && skip.contains(PACKAGE), "{skip}");
}

/// Run only in a child by the test below, with or without CI set.
#[test]
#[ignore = "run in a child process by a_missing_program_fails_under_ci_and_skips_elsewhere"]
fn child_needs_a_missing_program() {
    // Non-short-circuit `|`: both helpers are asked.
    let found = programs::find(NO_SUCH, PACKAGE).is_some()
        | programs::require(NO_SUCH, "-version", PACKAGE);
    assert!(!found, "{NO_SUCH} was found");
}

/// Runs child_needs_a_missing_program in this test binary; its exit
/// status and what it printed.
fn child(ci: Option<&str>) -> (bool, String) {
    let exe = std::env::current_exe().expect("the test binary");
    let mut cmd = Command::new(exe);
    cmd.args([
        "--exact",
        "child_needs_a_missing_program",
        "--ignored",
        "--nocapture",
        "--test-threads=1",
    ]);
    match ci {
        Some(v) => cmd.env("CI", v),
        None => cmd.env_remove("CI"),
    };
    let out = cmd.output().expect("the test binary runs");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn a_missing_program_fails_under_ci_and_skips_elsewhere() {
    let (passed, text) = child(Some("true"));
    assert!(!passed, "under CI=true a missing program passed:\n{text}");
    assert!(
        text.contains("CI is set") && text.contains(PACKAGE),
        "{text}"
    );
    let (passed, text) = child(None);
    assert!(passed, "without CI a missing program failed:\n{text}");
    assert!(
        text.contains(&format!("SKIPPED: {NO_SUCH} is missing")) && text.contains(PACKAGE),
        "{text}"
    );
}
