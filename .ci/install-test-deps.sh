#!/bin/sh
# Installs what the end-to-end tests (tests/e2e_*.rs) use beyond the Rust toolchain:
#   gcc/g++/make      build the C/C++ examples and the generated test projects
#   libc6-dev         libc.a, for the statically linked refusal test (gcc -static)
#   python3           the real-program tests
#   time              /usr/bin/time -f %M (max RSS) for the plausibility checks
#   strace            lists the programs a real command executes (tests/e2e_real_programs.rs
#                     falls back to known lists without it)
#   libjemalloc-dev, libgoogle-perftools-dev (tcmalloc), libmimalloc-dev
#                     programs linked against another malloc
#   golang-go         `go tool pprof` reads the pprof export (tests/render_pprof.rs,
#                     tests/e2e_reports.rs)
#   chromium          headless browser for the report page (tests/e2e_browser.rs)
# Idempotent and quiet: packages already present are skipped, an unavailable package is
# reported on stderr and skipped, and the script always exits 0 (the tests themselves print
# "SKIPPED: ..." for whatever is still missing).
set -u

PACKAGES="gcc g++ make libc6-dev python3 time strace libjemalloc-dev libjemalloc2 libgoogle-perftools-dev libmimalloc-dev golang-go chromium"

if [ "$(id -u)" -eq 0 ]; then
    SUDO=""
elif command -v sudo >/dev/null 2>&1; then
    SUDO="sudo -n"
else
    echo "install-test-deps: not root and no sudo; nothing installed" >&2
    exit 0
fi

missing=""
for p in $PACKAGES; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        missing="$missing $p"
    fi
done
[ -z "$missing" ] && exit 0

if ! command -v apt-get >/dev/null 2>&1; then
    echo "install-test-deps: no apt-get; missing:$missing" >&2
    exit 0
fi

export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq >/dev/null 2>&1 || echo "install-test-deps: apt-get update failed" >&2

# One package at a time, so that one unavailable package does not prevent the others.
for p in $missing; do
    if ! $SUDO apt-get install -y -qq --no-install-recommends "$p" >/dev/null 2>&1; then
        echo "install-test-deps: could not install $p (skipped)" >&2
    fi
done
exit 0
