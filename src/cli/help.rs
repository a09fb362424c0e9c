//! Each command's help text (`Topic`).

/// Each command's help text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Topic {
    Overview,
    Serve,
    Printer,
    PrinterAdd,
    PrinterList,
    PrinterShow,
    PrinterSet,
    PrinterRemove,
    PrinterForgetCert,
    Snapshot,
    Test,
    UsbCameras,
}

impl Topic {
    /// The command as typed after `printcam`, for error messages.
    pub fn name(self) -> &'static str {
        match self {
            Topic::Overview => "",
            Topic::Serve => "serve",
            Topic::Printer => "printer",
            Topic::PrinterAdd => "printer add",
            Topic::PrinterList => "printer list",
            Topic::PrinterShow => "printer show",
            Topic::PrinterSet => "printer set",
            Topic::PrinterRemove => "printer remove",
            Topic::PrinterForgetCert => "printer forget-cert",
            Topic::Snapshot => "snapshot",
            Topic::Test => "test",
            Topic::UsbCameras => "usb-cameras",
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Topic::Overview => HELP_OVERVIEW,
            Topic::Serve => HELP_SERVE,
            Topic::Printer => HELP_PRINTER,
            Topic::PrinterAdd => HELP_ADD,
            Topic::PrinterList => HELP_LIST,
            Topic::PrinterShow => HELP_SHOW,
            Topic::PrinterSet => HELP_SET,
            Topic::PrinterRemove => HELP_REMOVE,
            Topic::PrinterForgetCert => HELP_FORGET_CERT,
            Topic::Snapshot => HELP_SNAPSHOT,
            Topic::Test => HELP_TEST,
            Topic::UsbCameras => HELP_USB,
        }
    }
}

const HELP_OVERVIEW: &str = "\
printcam — serve 3D printer cameras as MJPEG streams and JPEG snapshots

Usage: printcam [GLOBAL OPTIONS] COMMAND [OPTIONS]

Commands:
  serve                  run the HTTP server
  printer add|list|show|set|remove|forget-cert
                         manage the registered printers and cameras
  snapshot ID            save one JPEG from a printer's camera
  test ID                check that a printer's camera answers
  usb-cameras            list the USB (V4L2) cameras on this box
  help [COMMAND]         show help for a command

Global options (before or after the command):
  --db PATH              the printer database (default printcam.db; env PRINTCAM_DB)
  --allow-loopback       allow camera URLs on this box (env PRINTCAM_ALLOW_LOOPBACK)
  --ffmpeg PATH          the ffmpeg to run (env PRINTCAM_FFMPEG; default: search PATH)
  -h, --help             show help (also after any command)
  -V, --version          show the version

Flags win over the environment. Options take a value as '--flag value' or '--flag=value'.
Exit status: 0 success, 1 failure, 2 bad usage.

Example:
  printcam printer add --name P1S --ip 192.168.1.50 --access-code - --model P1S
  printcam serve --listen 0.0.0.0:8080
";

const HELP_SERVE: &str = "\
Usage: printcam serve [OPTIONS]

Runs the HTTP server until it is stopped. Logs go to stderr (RUST_LOG, default info).

Options:
  --listen ADDR          address to listen on (default 0.0.0.0:8080; env PRINTCAM_LISTEN)
  --db PATH              the printer database (default printcam.db; env PRINTCAM_DB)
  --demo                 serve a built-in demo camera as printer 0; without --db (or
                         PRINTCAM_DB) the database is kept in memory only
  --grace SECS           keep a camera open this long after its last viewer (default 5;
                         env PRINTCAM_GRACE)
  --allow-loopback       allow camera URLs on this box (env PRINTCAM_ALLOW_LOOPBACK)
  --ffmpeg PATH          the ffmpeg to run (env PRINTCAM_FFMPEG)
  --token TOKEN          require this token (?token= or Authorization: Bearer) on every
                         endpoint but /healthz; prefer env PRINTCAM_TOKEN, which the
                         process list does not show
  --cors-origin ORIGIN   send Access-Control-Allow-Origin: ORIGIN, and accept changes from
                         pages of that origin (env PRINTCAM_CORS_ORIGIN)
  --allow-host NAMES     comma-separated host names, beside IP addresses, localhost and
                         this machine's name, that changes may be sent to (env
                         PRINTCAM_ALLOW_HOSTS)
  --max-viewers N        streams open at once, all cameras (default 100; env
                         PRINTCAM_MAX_VIEWERS)
  --max-viewers-per-camera N
                         streams open at once per camera (default 25; env
                         PRINTCAM_MAX_VIEWERS_PER_CAMERA)
  --max-connections-per-client N
                         connections one client address holds at once (default 32;
                         raise it behind a reverse proxy; env
                         PRINTCAM_MAX_CONNECTIONS_PER_CLIENT)
  --write-timeout SECS   drop a client that takes no data for this long (default 10;
                         env PRINTCAM_WRITE_TIMEOUT)
  --camera-quiet-timeout SECS
                         reconnect a P1/A1 chamber camera that sends no frame for this
                         long (default 30; env PRINTCAM_CAMERA_QUIET_TIMEOUT)
  --printer-ca FILE      PEM file of further CA certificates to check printers'
                         certificates against, beside Bambu's (env PRINTCAM_PRINTER_CA)
  -h, --help             show this help

Example:
  printcam serve --listen 127.0.0.1:8080 --db /etc/printcam/printcam.db
";

const HELP_PRINTER: &str = "\
Usage: printcam printer SUBCOMMAND [OPTIONS]

Subcommands:
  add                    register a printer or an external camera; prints the new ID
  list (ls)              list the printers (--json for JSON)
  show ID                show one printer's settings
  set ID                 change a printer's settings
  remove (rm) ID         delete a printer
  forget-cert ID         forget the printer's pinned TLS certificate

Each takes --db PATH and -h/--help.

Example:
  printcam printer list --db /etc/printcam/printcam.db
";

const HELP_ADD: &str = "\
Usage: printcam printer add --name NAME [FIELDS]

Registers a printer and prints its new ID alone on stdout.

Fields:
  --name NAME            a name to show (required)
  --ip ADDR              a Bambu Lab printer's address (needs --access-code)
  --access-code CODE     the printer's LAN access code (shown on its screen);
                         '-' reads it from stdin
  --model MODEL          the printer model (X1C, P1S, Bambu Lab H2D, N2S, …): picks the
                         camera protocol; without one (or an unknown one) the camera
                         is detected on first use
  --serial SERIAL        the printer's serial number
  --camera-port PORT     replace the built-in camera's port (6000 or 322)
  --camera-url URL       an external camera: http(s) URL, rtsp(s) URL or /dev/videoN
  --camera-type TYPE     the external camera's type: mjpeg, snapshot, rtsp or usb
  --camera-enabled       use the external camera (the default when --camera-url is given)
  --camera-disabled      store the external camera but keep using the built-in one
  --camera-rotation DEG  turn the picture for display: 0, 90, 180 or 270 (clockwise)
  --camera-flip FLIP     mirror it first: none, horizontal or vertical
  --rtsp-client CLIENT   who reads an RTSP camera: auto (default), native or ffmpeg

Options:
  --db PATH              the printer database (created if missing)
  --allow-loopback       allow camera URLs on this box
  -h, --help             show this help

A code typed on the command line stays in your shell's history and shows in
the process list: prefer '--access-code -' and type or pipe it in.

--camera-rotation and --camera-flip tag every JPEG frame (EXIF Orientation):
browsers show the picture turned, nothing is re-encoded.

--rtsp-client counts for rtsp:// and rtsps:// cameras and the RTSPS camera of
X1, H2 and P2 printers. auto: printcam's own RTSP client, one session for
<video>, HLS, MJPEG and snapshots, falling back to ffmpeg's (reason logged)
for streams it cannot read (H.265, MJPEG over RTSP, an SDP it does not
understand); native: no fallback; ffmpeg: ffmpeg's client for MJPEG and
snapshots (decodes every frame; for troubleshooting). stream.mp4 and HLS
always use the native client.

Examples:
  printcam printer add --name P1S --ip 192.168.1.50 --access-code - --model P1S
  printcam printer add --name Door --camera-url http://192.168.1.60/stream --camera-type mjpeg
";

const HELP_LIST: &str = "\
Usage: printcam printer list [--json]

Lists the printers: ID, name, camera kind and address (camera URL passwords hidden;
access codes are never shown).

Options:
  --json                 print a JSON array instead of a table
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer list --json
";

const HELP_SHOW: &str = "\
Usage: printcam printer show ID

Shows one printer's settings, one per line. The access code is shown only as
'set' or 'not set'; camera URL passwords are hidden.

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer show 3
";

const HELP_SET: &str = "\
Usage: printcam printer set ID [FIELDS]

Changes the given fields and leaves the others as they are. An EMPTY value
clears a field: --ip \"\" removes the printer address, --camera-url \"\" removes
the external camera (and its type, and switches it off). Giving a camera URL
switches the external camera on unless --camera-disabled is given too.

Fields:
  --name NAME            a name to show
  --ip ADDR              a Bambu Lab printer's address (needs an access code)
  --access-code CODE     the printer's LAN access code; '-' reads it from stdin
  --model MODEL          the printer model (X1C, P1S, A1, …)
  --serial SERIAL        the printer's serial number
  --camera-port PORT     replace the built-in camera's port
  --camera-url URL       an external camera: http(s) URL, rtsp(s) URL or /dev/videoN
  --camera-type TYPE     mjpeg, snapshot, rtsp or usb
  --camera-enabled       use the external camera
  --camera-disabled      use the built-in camera, keep the external one stored
  --camera-rotation DEG  turn the picture for display: 0, 90, 180 or 270 (clockwise)
  --camera-flip FLIP     mirror it first: none, horizontal or vertical
  --rtsp-client CLIENT   who reads an RTSP camera: auto (default), native or ffmpeg

Options:
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  -h, --help             show this help

Examples:
  printcam printer set 3 --access-code - < code.txt
  printcam printer set 3 --camera-url \"\"
";

const HELP_REMOVE: &str = "\
Usage: printcam printer remove ID

Deletes a printer and its camera settings.

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer remove 3
";

const HELP_FORGET_CERT: &str = "\
Usage: printcam printer forget-cert ID

Forgets the TLS certificate pinned on the printer's first connection, so the
next connection pins the certificate it sees (after a printer was replaced or
its certificate renewed).

Options:
  --db PATH              the printer database
  -h, --help             show this help

Example:
  printcam printer forget-cert 3
";

const HELP_SNAPSHOT: &str = "\
Usage: printcam snapshot ID [-o FILE]

Writes one JPEG from the printer's camera to FILE, or to stdout when it is not
a terminal. While 'printcam serve' runs on the same database (it writes
DB.server beside it), the JPEG comes through that server and its one camera
connection; otherwise printcam connects to the camera itself.

Options:
  -o, --output FILE      write to FILE (replaced atomically); '-' means stdout
  --demo                 ID 0 is the built-in demo camera
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  --ffmpeg PATH          the ffmpeg to run
  -h, --help             show this help

Example:
  printcam snapshot 3 -o now.jpg
";

const HELP_USB: &str = "\
Usage: printcam usb-cameras

Lists the V4L2 devices (/dev/video0 to /dev/video99) a usb camera can use,
with their name and driver when v4l2-ctl is installed.

Example:
  printcam usb-cameras
  printcam printer add --name Bench --camera-url /dev/video0 --camera-type usb
";

const HELP_TEST: &str = "\
Usage: printcam test ID

Checks the printer's camera and reports 'ok: WIDTHxHEIGHT' or 'failed: why'.
Exits 0 when the camera answered, 1 when it did not. While 'printcam serve'
runs on the same database (it writes DB.server beside it), the test goes
through that server and its one camera connection; otherwise printcam
connects to the camera itself.

Options:
  --demo                 ID 0 is the built-in demo camera
  --db PATH              the printer database
  --allow-loopback       allow camera URLs on this box
  --ffmpeg PATH          the ffmpeg to run
  -h, --help             show this help

Example:
  printcam test 3
";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_help_text_has_usage_and_an_example() {
        let topics = [
            Topic::Overview,
            Topic::Serve,
            Topic::Printer,
            Topic::PrinterAdd,
            Topic::PrinterList,
            Topic::PrinterShow,
            Topic::PrinterSet,
            Topic::PrinterRemove,
            Topic::PrinterForgetCert,
            Topic::Snapshot,
            Topic::Test,
        ];
        for t in topics {
            assert!(t.text().contains("Usage: printcam"), "{t:?}");
            assert!(t.text().contains("Example"), "{t:?}");
            assert!(
                t.text().contains(&format!("printcam {}", t.name())),
                "{t:?}"
            );
        }
    }
}
