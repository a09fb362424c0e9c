#!/bin/sh
# Cross-builds printcam for 64-bit and 32-bit ARM Linux (glibc) with Debian's
# own Rust toolchain (rustc-web / cargo-web and the foreign-architecture
# libstd packages): no rustup targets, no containers.
#
#   scripts/cross-build.sh [--install] [--features F] [--no-default-features]
#
# --install    (root) adds the arm64/armhf architectures and installs the
#              toolchain, all Rust packages at one version; only what is
#              missing is done, so it is safe to repeat.
# Environment: DEBIAN_RUST_VERSION pins the Debian package version (default:
#              the newest one that arm64, armhf and the host all offer);
#              CARGO_TARGET_DIR (default target/debian-cross);
#              TARGETS (default: both triples below).
set -eu

TARGETS=${TARGETS:-"aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf"}
FOREIGN_ARCHES="arm64 armhf"
# The libc6-dev-*-cross packages are only recommended by the compilers, but
# ring and the bundled SQLite need their headers and the linker their crt files.
GCC_PACKAGES="gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross"

die() {
    echo "cross-build: $*" >&2
    exit 1
}

say() {
    echo "cross-build: $*" >&2
}

# The versions apt can install for one package, newest first.
versions_of() {
    apt-cache madison "$1" 2>/dev/null | awk -F'|' '{gsub(/ /, "", $2); print $2}'
}

# The newest libstd version every architecture has: the per-architecture
# indexes can disagree for a while, and mixing versions does not link.
pick_version() {
    if [ -n "${DEBIAN_RUST_VERSION:-}" ]; then
        echo "$DEBIAN_RUST_VERSION"
        return
    fi
    for v in $(versions_of libstd-rust-web-dev:arm64); do
        if versions_of libstd-rust-web-dev:armhf | grep -qxF "$v" &&
            versions_of rustc-web | grep -qxF "$v"; then
            echo "$v"
            return
        fi
    done
}

# The installed version of a package, empty when it is not installed.
# Without an :arch suffix the host's copy is meant (dpkg-query would list
# every architecture's), or the only copy of an Architecture: all package.
installed_version() {
    case $1 in
    *:*) dpkg_version "$1" ;;
    *)
        v=$(dpkg_version "$1:$(dpkg --print-architecture)")
        [ -n "$v" ] || v=$(dpkg_version "$1")
        echo "$v"
        ;;
    esac
}

dpkg_version() {
    dpkg-query -W -f='${db:Status-Abbrev}${Version}\n' "$1" 2>/dev/null | sed -n 's/^ii *//p'
}

install_toolchain() {
    [ "$(id -u)" -eq 0 ] || die "--install needs root (apt-get, dpkg)"
    need_update=no
    for arch in $FOREIGN_ARCHES; do
        if ! dpkg --print-foreign-architectures | grep -qxF "$arch"; then
            say "adding architecture $arch"
            dpkg --add-architecture "$arch"
            need_update=yes
        fi
    done
    if [ "$need_update" = no ] && [ -z "$(versions_of libstd-rust-web-dev:arm64)" ]; then
        need_update=yes
    fi
    if [ "$need_update" = yes ]; then
        update_indexes
    fi
    version=$(pick_version)
    [ -n "$version" ] || die "no libstd-rust-web-dev version is offered for arm64, armhf and the host alike"
    missing=""
    for pkg in rustc-web cargo-web libstd-rust-web-dev libstd-rust-web-dev:arm64 libstd-rust-web-dev:armhf; do
        if [ "$(installed_version "$pkg")" != "$version" ]; then
            missing="$missing $pkg=$version"
        fi
    done
    for pkg in $GCC_PACKAGES; do
        if [ -z "$(installed_version "$pkg")" ]; then
            missing="$missing $pkg"
        fi
    done
    if [ -z "$missing" ]; then
        say "toolchain already installed (Rust packages $version)"
        return
    fi
    missing="$missing$(multiarch_pins "$missing")"
    say "installing:$missing"
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends $missing
}

# The newest version of a package that the host, arm64 and armhf all offer.
common_version() {
    for v in $(versions_of "$1:arm64"); do
        if versions_of "$1:armhf" | grep -qxF "$v" && versions_of "$1" | grep -qxF "$v"; then
            echo "$v"
            return
        fi
    done
}

# A Multi-Arch: same library must have one version on every architecture;
# when the host has a version the foreign indexes lack, apt gives up
# ("Depends: liblzma5:arm64 ... but it is not going to be installed").
# Dry runs find such libraries and pin them to a version all three share.
multiarch_pins() {
    pins=""
    for round in 1 2 3 4 5; do
        # shellcheck disable=SC2086 # one word per package
        if out=$(apt-get install -s --no-install-recommends $1 $pins 2>&1); then
            echo "$pins"
            return
        fi
        libs=$(echo "$out" | sed -n 's/.*Depends: \([^: ]*\):\(arm64\|armhf\) .*not going to be installed.*/\1/p' | sort -u)
        [ -n "$libs" ] || break
        for lib in $libs; do
            case $pins in *" $lib="*) echo "$out" >&2; die "cannot align $lib across architectures" ;; esac
            v=$(common_version "$lib")
            [ -n "$v" ] || die "no version of $lib is offered for the host, arm64 and armhf alike"
            say "pinning $lib to $v on every architecture (round $round)"
            pins="$pins $lib=$v $lib:arm64=$v $lib:armhf=$v"
        done
    done
    echo "$out" >&2
    die "apt cannot install the toolchain (see above)"
}

# The cross gcc for a Rust target triple.
gcc_for() {
    case $1 in
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu-gcc ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf-gcc ;;
    *) die "no cross compiler known for $1" ;;
    esac
}

build_one() {
    target=$1
    shift
    gcc=$(gcc_for "$target")
    command -v "$gcc" >/dev/null || die "$gcc is missing (run with --install)"
    [ -d "/usr/lib/rustlib/$target/lib" ] ||
        die "Debian's std for $target is missing (run with --install)"
    upper=$(echo "$target" | tr 'a-z-' 'A-Z_')
    lower=$(echo "$target" | tr '-' '_')
    say "building for $target with $($RUSTC --version)"
    # cargo reads these by name, so they have to be built at run time.
    env "CARGO_TARGET_${upper}_LINKER=$gcc" \
        "CC_${lower}=$gcc" \
        "AR_${lower}=${gcc%-gcc}-ar" \
        "$CARGO" build --release --locked --target "$target" "$@"
}

report() {
    echo
    for target in $TARGETS; do
        bin="$CARGO_TARGET_DIR/$target/release/printcam"
        [ -f "$bin" ] || die "$bin was not built"
        size=$(wc -c <"$bin")
        echo "$target: $size bytes ($(((size + 1023) / 1024)) KiB)  $bin"
        file -b "$bin" | sed 's/^/    /'
    done
}

main() {
    do_install=no
    for arg in "$@"; do
        case $arg in
        --install) do_install=yes ;;
        -h | --help)
            sed -n '2,15p' "$0" | sed 's/^# \{0,1\}//'
            exit 0
            ;;
        esac
    done
    if [ "$do_install" = yes ]; then
        install_toolchain
    fi
    # Everything else is passed to cargo (features).
    cargo_args=""
    for arg in "$@"; do
        [ "$arg" = --install ] || cargo_args="$cargo_args $arg"
    done

    cd "$(dirname "$0")/.."
    CARGO=/usr/bin/cargo
    RUSTC=/usr/bin/rustc
    [ -x "$CARGO" ] && [ -x "$RUSTC" ] || die "Debian's cargo/rustc are missing (run with --install)"
    # Without these a rustup proxy earlier in PATH would be used as rustc.
    export RUSTC RUSTDOC=/usr/bin/rustdoc
    unset RUSTUP_TOOLCHAIN RUSTFLAGS CARGO_BUILD_RUSTFLAGS 2>/dev/null || true
    # A separate target directory: Debian's rustc cannot read rlibs another
    # compiler version wrote.
    CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target/debian-cross}
    export CARGO_TARGET_DIR
    for target in $TARGETS; do
        # shellcheck disable=SC2086 # cargo flags, one per word
        build_one "$target" $cargo_args
    done
    report
}

main "$@"
