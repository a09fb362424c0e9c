#!/usr/bin/python3
"""A real RTSP server for printcam's tests: H.264 test video at
/streaming/live/1 on 127.0.0.1, an ephemeral port, Digest auth, TCP only
(like a Bambu printer's port 322 behind its TLS).

usage: rtsp_server.py USER PASSWORD [WIDTH HEIGHT [SLOW [SESSION_TIMEOUT [PORT [CODEC]]]]]
With SLOW > 1 the stream's timestamps (and so its RTP timestamps) run SLOW
times slower than real time while frames keep coming at 15 fps, as P2S
firmware 01.02.00.00 stamps them.
Prints the bound port on stdout, then serves until killed. With
SESSION_TIMEOUT (seconds) sessions time out after that long, and each
client's OPTIONS, GET_PARAMETER, TEARDOWN and close is printed on stdout
as one line, so a test can see what the server saw (0: no timeout and
no report). PORT (default 0, any free one) lets a restarted server come
back where its clients look for it. CODEC "jpeg" sends MJPEG over RTP
(RFC 2435) instead of H.264, and "h265" H.265 (x265enc, from
gstreamer1.0-plugins-bad): streams only ffmpeg's client reads.
Needs python3-gi, gir1.2-gst-rtsp-server-1.0 and gstreamer1.0-plugins-ugly (x264enc).
"""
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtsp", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtsp, GstRtspServer  # noqa: E402


def slow_down(media, slow):
    """Divides every timestamp leaving the encoder by `slow`."""
    enc = media.get_element().get_by_name("enc")

    def probe(_pad, info):
        buf = info.get_buffer()
        for field in ("pts", "dts"):
            t = getattr(buf, field)
            if t != Gst.CLOCK_TIME_NONE:
                setattr(buf, field, t // slow)
        if buf.duration != Gst.CLOCK_TIME_NONE:
            buf.duration = buf.duration // slow
        return Gst.PadProbeReturn.OK

    enc.get_static_pad("src").add_probe(Gst.PadProbeType.BUFFER, probe)


def say(event):
    print(event, flush=True)


def watch(session_timeout):
    """Reports what each client asks, and sets its sessions' timeout."""

    def on_client(_server, client):
        for signal in ("options-request", "get-parameter-request", "teardown-request"):
            name = signal.rsplit("-", 1)[0].upper().replace("-", "_")
            client.connect(signal, lambda _c, _ctx, name=name: say(name))
        client.connect("new-session", lambda _c, s: s.set_timeout(session_timeout))
        client.connect("closed", lambda _c: say("CLOSED"))

    return on_client


def main():
    user, password = sys.argv[1], sys.argv[2]
    width, height = (sys.argv[3], sys.argv[4]) if len(sys.argv) > 4 else ("640", "360")
    slow = int(sys.argv[5]) if len(sys.argv) > 5 else 1
    session_timeout = int(sys.argv[6]) if len(sys.argv) > 6 else 0
    session_timeout = session_timeout or None
    port = sys.argv[7] if len(sys.argv) > 7 else "0"
    codec = sys.argv[8] if len(sys.argv) > 8 else "h264"
    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(port)

    factory = GstRtspServer.RTSPMediaFactory()
    if codec == "h265":
        encode = (
            "! x265enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
            "! rtph265pay name=pay0 pt=96 config-interval=1 )"
        )
    elif codec == "jpeg":
        encode = "! videoconvert ! video/x-raw,format=I420 ! jpegenc name=enc ! rtpjpegpay name=pay0 pt=26 )"
    else:
        encode = (
            "! x264enc name=enc tune=zerolatency speed-preset=ultrafast key-int-max=15 "
            "! rtph264pay name=pay0 pt=96 config-interval=1 )"
        )
    factory.set_launch(
        "( videotestsrc is-live=true "
        f"! video/x-raw,width={width},height={height},framerate=15/1 " + encode
    )
    factory.set_shared(True)
    if slow > 1:
        factory.connect("media-configure", lambda _f, media: slow_down(media, slow))
    factory.set_protocols(GstRtsp.RTSPLowerTrans.TCP)
    factory.add_role_from_structure(
        Gst.Structure.new_from_string(
            "user, media.factory.access=(boolean)true, media.factory.construct=(boolean)true"
        )
    )

    auth = GstRtspServer.RTSPAuth()
    auth.set_supported_methods(GstRtsp.RTSPAuthMethod.DIGEST)
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "user")
    auth.add_digest(user, password, token)
    server.set_auth(auth)

    server.get_mount_points().add_factory("/streaming/live/1", factory)
    if session_timeout is not None:
        server.connect("client-connected", watch(session_timeout))
    if server.attach(None) == 0:
        sys.exit("cannot start the RTSP server")
    print(server.get_bound_port(), flush=True)
    GLib.MainLoop().run()


if __name__ == "__main__":
    main()
