#!/bin/sh
# Builds a static printcam for mipsel-unknown-linux-musl (MT7621/MT7628
# OpenWrt routers) with a nightly rustc (-Zbuild-std: the target is tier 3,
# rustup has no std for it) and zig as the musl C compiler and linker
# (cargo-zigbuild): no containers, no OpenWrt SDK.
#
#   scripts/mipsel-build.sh [--install] [--run] [cargo flags, e.g. -j 2]
#
# Needs:       rustup with the nightly toolchain and its rust-src component;
#              zig from PyPI (`python3 -m ziglang`); cargo-zigbuild.
# --install    installs whichever of those is missing (rustup toolchain and
#              component, pip install ziglang, cargo install cargo-zigbuild).
# --run        afterwards, runs the binary under qemu-mipsel (apt-get install
#              qemu-user): --version, printer add/list on a scratch database,
#              and `serve --demo` on 127.0.0.1 answering /healthz and a
#              snapshot. Needs curl.
# Environment: MIPSEL_TOOLCHAIN (default nightly); CARGO_TARGET_DIR (default
#              target/mipsel); MIPSEL_PORT (default 18471, for --run);
#              RUSTFLAGS is kept, with -C relocation-model=static added.
set -eu

TARGET=mipsel-unknown-linux-musl
TOOLCHAIN=${MIPSEL_TOOLCHAIN:-nightly}
# The versions this was measured with (see README, "Cross builds").
ZIGLANG_VERSION=0.17.1
CARGO_ZIGBUILD_VERSION=0.24.1

die() {
    echo "mipsel-build: $*" >&2
    exit 1
}

say() {
    echo "mipsel-build: $*" >&2
}

have_toolchain() {
    rustup run "$TOOLCHAIN" rustc --version >/dev/null 2>&1
}

have_rust_src() {
    rustup component list --installed --toolchain "$TOOLCHAIN" 2>/dev/null | grep -q '^rust-src'
}

have_zig() {
    python3 -m ziglang version >/dev/null 2>&1
}

have_zigbuild() {
    command -v cargo-zigbuild >/dev/null 2>&1
}

install_missing() {
    command -v rustup >/dev/null || die "rustup is missing: install it first (https://rustup.rs)"
    if ! have_toolchain; then
        say "installing the $TOOLCHAIN toolchain"
        rustup toolchain install "$TOOLCHAIN" --profile minimal --component rust-src
    elif ! have_rust_src; then
        say "adding rust-src to $TOOLCHAIN"
        rustup component add rust-src --toolchain "$TOOLCHAIN"
    fi
    if ! have_zig; then
        say "installing zig from PyPI (ziglang==$ZIGLANG_VERSION)"
        python3 -m pip install "ziglang==$ZIGLANG_VERSION"
    fi
    if ! have_zigbuild; then
        say "installing cargo-zigbuild $CARGO_ZIGBUILD_VERSION"
        cargo install --locked --version "$CARGO_ZIGBUILD_VERSION" cargo-zigbuild
    fi
}

check_prerequisites() {
    command -v rustup >/dev/null || die "rustup is missing"
    have_toolchain || die "the $TOOLCHAIN toolchain is missing (run with --install)"
    have_rust_src || die "rust-src is missing for $TOOLCHAIN (run with --install)"
    have_zig || die "zig is missing: python3 -m ziglang fails (run with --install)"
    have_zigbuild || die "cargo-zigbuild is missing (run with --install)"
}

build() {
    say "building for $TARGET with $(rustup run "$TOOLCHAIN" rustc --version)," \
        "zig $(python3 -m ziglang version), $(cargo-zigbuild --version 2>/dev/null || echo cargo-zigbuild)"
    # Not a static-pie: in the static-pie zig links for MIPS, undefined weak
    # symbols (std's getrandom, gettid, __cxa_thread_atexit_impl) come out as
    # the load address instead of null, and the first HashMap jumps there
    # (SIGSEGV). A plain static executable resolves them to null.
    RUSTFLAGS="${RUSTFLAGS:+$RUSTFLAGS }-C relocation-model=static"
    export RUSTFLAGS
    # panic_unwind: the target's (and OpenWrt's) panic strategy is unwind.
    rustup run "$TOOLCHAIN" cargo zigbuild --release --locked --target "$TARGET" \
        -Zbuild-std=std,panic_unwind "$@"
}

report() {
    size=$(wc -c <"$BIN")
    echo
    echo "$TARGET: $size bytes ($(((size + 1023) / 1024)) KiB)  $BIN"
    if command -v file >/dev/null; then
        file -b "$BIN" | sed 's/^/    /'
    fi
}

# Smoke test under qemu-user. Every qemu run is bounded by timeout: qemu-user
# 7.2 has been seen to hang at the first thread start (with ARM binaries).
run_smoke() {
    command -v qemu-mipsel >/dev/null || die "qemu-mipsel is missing (apt-get install qemu-user)"
    command -v curl >/dev/null || die "curl is missing"
    port=${MIPSEL_PORT:-18471}
    scratch=$(mktemp -d)
    server=""
    trap 'if [ -n "$server" ]; then kill "$server" 2>/dev/null || true; fi; rm -rf "$scratch"' EXIT
    q() { timeout 60 qemu-mipsel "$BIN" "$@"; }

    say "qemu: --version"
    q --version
    say "qemu: printer add / list on $scratch/printcam.db"
    q printer add --db "$scratch/printcam.db" --name P1S --ip 192.168.1.50 \
        --access-code 12345678 --model P1S >/dev/null
    q printer list --db "$scratch/printcam.db"

    say "qemu: serve --demo on 127.0.0.1:$port"
    RUST_LOG=info timeout 120 qemu-mipsel "$BIN" serve --listen "127.0.0.1:$port" --demo \
        >"$scratch/serve.log" 2>&1 &
    server=$!
    tries=0
    until curl -fsS -m 5 "http://127.0.0.1:$port/healthz" >"$scratch/healthz" 2>/dev/null; do
        tries=$((tries + 1))
        if [ "$tries" -ge 30 ] || ! kill -0 "$server" 2>/dev/null; then
            cat "$scratch/serve.log" >&2
            die "the server under qemu did not answer /healthz"
        fi
        sleep 1
    done
    echo "/healthz: $(cat "$scratch/healthz")"
    curl -fsS -m 30 -o "$scratch/snapshot.jpg" "http://127.0.0.1:$port/printers/0/camera/snapshot" ||
        die "no snapshot from the demo camera"
    echo "snapshot: $(wc -c <"$scratch/snapshot.jpg") bytes"
    if command -v file >/dev/null; then
        file -b "$scratch/snapshot.jpg" | sed 's/^/    /'
    fi
    kill "$server"
    wait "$server" || true
    server=""
    grep -q 'stopped' "$scratch/serve.log" || {
        cat "$scratch/serve.log" >&2
        die "the server did not stop cleanly on SIGTERM"
    }
    say "qemu: all ran; the server stopped on SIGTERM"
}

main() {
    do_install=no
    do_run=no
    # Keep every other argument, quoting intact, for cargo.
    for arg in "$@"; do
        shift
        case $arg in
        --install) do_install=yes ;;
        --run) do_run=yes ;;
        -h | --help)
            awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
            exit 0
            ;;
        *) set -- "$@" "$arg" ;;
        esac
    done
    if [ "$do_install" = yes ]; then
        install_missing
    fi
    check_prerequisites

    cd "$(dirname "$0")/.."
    # Its own target directory: std is rebuilt from source for this target.
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/mipsel}
    export CARGO_TARGET_DIR
    build "$@"
    BIN="$CARGO_TARGET_DIR/$TARGET/release/printcam"
    [ -f "$BIN" ] || die "$BIN was not built"
    report
    if [ "$do_run" = yes ]; then
        echo
        run_smoke
    fi
}

main "$@"
