#!/bin/sh
# A fake ffmpeg that fails at once the way ffmpeg does when the camera's port
# is closed, repeating the URL (and its password) it was given.
for a in "$@"; do
    if [ "$a" = "demuxer=rtsp" ]; then
        exit 0
    fi
done
url=""
prev=""
for a in "$@"; do
    if [ "$prev" = "-i" ]; then url="$a"; fi
    prev="$a"
done
echo "[tcp @ 0x55d0c0] Connection to tcp://127.0.0.1:1?timeout=0 failed: Connection refused" >&2
echo "$url: Connection refused" >&2
exit 1
