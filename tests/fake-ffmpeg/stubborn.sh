#!/bin/sh
# A fake ffmpeg that ignores SIGTERM and prints a frame now and then forever:
# only SIGKILL ends it.
for a in "$@"; do
    if [ "$a" = "demuxer=rtsp" ]; then
        echo "  -stimeout          <int>        .D........ set timeout (in microseconds) of socket TCP I/O operations"
        exit 0
    fi
done
trap '' TERM
frame="$(dirname "$0")/frame.jpg"
while :; do
    cat "$frame"
    sleep 0.1
done
