#!/usr/bin/env bash
# The memory soak (README, "Benchmark"): printcam with two cameras under
# client churn, its anonymous memory, threads and fds printed over time and
# a verdict at the end, for the glibc build and then the static musl build.
#
#   bench/soak.sh [--minutes N] [--glibc-only | --musl-only] [soak options…]
#
# N defaults to 60. Other options (--warmup-minutes M, --every SECS) go to
# `bench soak`. Each build's output is also written to bench/soak-BUILD.txt.
# Exits non-zero if a build misses its verdict.
set -euo pipefail
cd "$(dirname "$0")/.."

minutes=60
builds=(glibc musl)
pass=()
while [ $# -gt 0 ]; do
    case "$1" in
        --minutes) minutes="${2:?--minutes takes a number}"; shift 2 ;;
        --glibc-only) builds=(glibc); shift ;;
        --musl-only) builds=(musl); shift ;;
        *) pass+=("$1"); shift ;;
    esac
done

musl_target=x86_64-unknown-linux-musl
for b in "${builds[@]}"; do
    if [ "$b" = musl ] && ! rustup target list --installed 2>/dev/null | grep -qx "$musl_target"; then
        echo "soak: the static musl build needs the $musl_target target and musl-gcc:" >&2
        echo "      rustup target add $musl_target; apt-get install musl-tools (or give --glibc-only)" >&2
        exit 2
    fi
done

cargo build --release --locked --example bench
failed=0
for b in "${builds[@]}"; do
    if [ "$b" = glibc ]; then
        cargo build --release --locked
        bin=target/release/printcam
    else
        CC_x86_64_unknown_linux_musl=musl-gcc cargo build --release --locked --target "$musl_target"
        bin="target/$musl_target/release/printcam"
    fi
    echo "soak: $b build, $bin, $minutes minutes"
    if ! PRINTCAM_BIN="$bin" target/release/examples/bench soak --minutes "$minutes" "${pass[@]}" \
        | tee "bench/soak-$b.txt"; then
        failed=1
    fi
done
exit "$failed"
