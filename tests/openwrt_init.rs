//! The OpenWrt init script (openwrt/files/printcam.init) run by /bin/sh with
//! stand-ins for OpenWrt's UCI and procd shell functions: a UCI config must
//! become the expected procd instance, using only flags the real CLI has.

use std::path::PathBuf;
use std::process::{Command, Output};

fn init_script() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("openwrt/files/printcam.init")
}

/// Stand-ins for /lib/functions.sh and /lib/functions/procd.sh with the same
/// argument conventions. A UCI section `main` of type `printcam` is described
/// by CONFIG_main_<option> variables, as config_load would leave them; procd
/// calls are printed one per line, each argument in brackets so word
/// splitting shows.
const STUBS: &str = r#"
config_load() { show config_load "$@"; }
config_get() { eval "$1=\"\${CONFIG_$2_$3:-\$4}\""; }
config_get_bool() {
	local v
	eval "v=\"\${CONFIG_$2_$3:-\$4}\""
	case "$v" in
	1|on|true|yes|enabled) v=1 ;;
	0|off|false|no|disabled) v=0 ;;
	*) v="$4" ;;
	esac
	eval "$1=\$v"
}
config_foreach() {
	local fn="$1" type="$2" s t
	for s in $SECTIONS; do
		eval "t=\"\${CONFIG_${s}_TYPE}\""
		[ "$t" = "$type" ] && "$fn" "$s"
	done
}
show() { printf '%s' "$1"; shift; for a in "$@"; do printf ' [%s]' "$a"; done; echo; }
procd_open_instance() { show open "$@"; }
procd_close_instance() { show close "$@"; }
procd_set_param() { show set "$@"; }
procd_append_param() { show append "$@"; }
procd_add_reload_trigger() { show reload_trigger "$@"; }
"#;

/// Sources the init script after the stubs (so the script's own functions
/// are real), replaces the file-system step, and runs `what`.
fn run(config: &str, what: &str) -> Output {
    let script = format!(
        "{STUBS}\n. \"$1\"\n\
         printcam_prepare_db() {{ show prepare \"$@\"; }}\n\
         SECTIONS=main\nCONFIG_main_TYPE=printcam\n{config}\n{what}\n"
    );
    Command::new("/bin/sh")
        .arg("-c")
        .arg(script)
        .arg("sh")
        .arg(init_script())
        .output()
        .unwrap()
}

fn lines(config: &str) -> Vec<String> {
    let out = run(config, "start_service");
    assert!(
        out.status.success(),
        "start_service failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.stderr.is_empty(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

fn expect(config: &str, expected: &[&str]) {
    assert_eq!(lines(config), expected, "for config:\n{config}");
}

#[test]
fn the_init_script_parses() {
    let out = Command::new("/bin/sh")
        .arg("-n")
        .arg(init_script())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn an_enabled_section_with_defaults_runs_as_the_printcam_user() {
    expect(
        "CONFIG_main_enabled=1",
        &[
            "config_load [printcam]",
            "prepare [/etc/printcam/printcam.db] [printcam]",
            "open [main]",
            "set [command] [/usr/bin/printcam] [serve] [--listen] [0.0.0.0:8080] [--db] [/etc/printcam/printcam.db]",
            "set [user] [printcam]",
            "set [respawn]",
            "set [stdout] [1]",
            "set [stderr] [1]",
            "set [file] [/etc/config/printcam]",
            "close",
        ],
    );
}

#[test]
fn every_option_becomes_a_flag_and_the_token_stays_off_the_command_line() {
    let config = "CONFIG_main_enabled=yes
CONFIG_main_listen=192.168.1.1
CONFIG_main_port=8081
CONFIG_main_db='/mnt/usb stick/printcam.db'
CONFIG_main_grace=10
CONFIG_main_allow_loopback=on
CONFIG_main_ffmpeg=/usr/bin/ffmpeg
CONFIG_main_token='s3cret token'
CONFIG_main_user=root";
    let got = lines(config);
    assert_eq!(
        got,
        [
            "config_load [printcam]",
            "prepare [/mnt/usb stick/printcam.db] [root]",
            "open [main]",
            "set [command] [/usr/bin/printcam] [serve] [--listen] [192.168.1.1:8081] [--db] [/mnt/usb stick/printcam.db]",
            "append [command] [--grace] [10]",
            "append [command] [--allow-loopback]",
            "append [command] [--ffmpeg] [/usr/bin/ffmpeg]",
            "set [env] [PRINTCAM_TOKEN=s3cret token]",
            "set [user] [root]",
            "set [respawn]",
            "set [stdout] [1]",
            "set [stderr] [1]",
            "set [file] [/etc/config/printcam]",
            "close",
        ]
    );
    let command: Vec<_> = got.iter().filter(|l| l.contains("[command]")).collect();
    assert!(command.iter().all(|l| !l.contains("s3cret")), "{command:?}");
}

#[test]
fn ipv6_addresses_get_brackets_once() {
    for (listen, expected) in [
        ("::", "[[::]:8080]"),
        ("[::1]", "[[::1]:8080]"),
        ("fe80::1", "[[fe80::1]:8080]"),
    ] {
        let got = lines(&format!("CONFIG_main_listen='{listen}'"));
        assert!(
            got.iter().any(|l| l.contains(expected)),
            "{listen}: {got:?}"
        );
    }
}

#[test]
fn a_disabled_section_starts_nothing() {
    expect(
        "CONFIG_main_enabled=0\nCONFIG_main_port=9999",
        &["config_load [printcam]"],
    );
}

#[test]
fn false_booleans_leave_flags_out() {
    let got = lines("CONFIG_main_allow_loopback=off\nCONFIG_main_grace=''");
    assert!(
        !got.iter()
            .any(|l| l.contains("--allow-loopback") || l.contains("--grace")),
        "{got:?}"
    );
}

#[test]
fn config_changes_reload_the_service() {
    let out = run("", "service_triggers");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "reload_trigger [printcam]\n"
    );
}

#[test]
fn the_script_only_uses_flags_that_serve_has() {
    let script = std::fs::read_to_string(init_script()).unwrap();
    let help = Command::new(env!("CARGO_BIN_EXE_printcam"))
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help =
        String::from_utf8_lossy(&help.stdout).into_owned() + &String::from_utf8_lossy(&help.stderr);
    let flags: Vec<&str> = script
        .split(|c: char| c.is_whitespace() || c == '"')
        .filter(|w| w.starts_with("--") && w.len() > 2)
        .collect();
    assert!(flags.len() >= 5, "{flags:?}");
    for flag in flags {
        assert!(
            help.contains(flag),
            "serve --help does not mention {flag}:\n{help}"
        );
    }
}
