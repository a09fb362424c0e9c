#!/bin/sh
# A fake ffmpeg: answers the `-h demuxer=rtsp` probe, records its arguments
# (one per line) in $FAKE_FFMPEG_ARGS, then prints frame.jpg
# $FAKE_FFMPEG_FRAMES times (forever if unset) on stdout.
for a in "$@"; do
    if [ "$a" = "demuxer=rtsp" ]; then
        echo "  -timeout           <int64>      .D......... set timeout (in microseconds) of socket I/O operations"
        exit 0
    fi
done
if [ -n "$FAKE_FFMPEG_ARGS" ]; then
    printf '%s\n' "$@" > "$FAKE_FFMPEG_ARGS"
fi
frame="$(dirname "$0")/frame.jpg"
i=0
while [ -z "$FAKE_FFMPEG_FRAMES" ] || [ "$i" -lt "$FAKE_FFMPEG_FRAMES" ]; do
    cat "$frame" || exit 1
    i=$((i + 1))
    sleep 0.05
done
