#!/usr/bin/env bash
# Builds a musl-linked CPython (the libc of Alpine images) on a Debian host, so lambdaric's
# Alpine/musl path is proven here without an Alpine mirror: CPython, zlib and libffi from
# Debian's source packages (apt-get source --download-only, with a private source list: the
# system's apt configuration is not touched), compiled with musl-gcc (Debian: musl-tools);
# then cffi (its _cffi_backend against that libffi), pycparser and simplejson from their PyPI
# sdists (fetched by the host's pip, built and installed by the musl interpreter's own pip).
#
# usage: images/musl/build-python.sh
#   Prints the interpreter's folder (PREFIX; PREFIX/bin/python3 is the interpreter) as the only
#   line on stdout; progress goes to stderr. Idempotent: a finished build is reused at once.
# environment:
#   LAMBDARIC_ROOTS_DIR  cache folder (default /var/cache/lambdaric-roots); the build goes to
#                        LAMBDARIC_ROOTS_DIR/musl-python-<version>-<key>, where <key> hashes this
#                        script (which pins every source version and checksum), so a cache made
#                        from other inputs is never reused.
#   MUSL_PY_JOBS         parallel compile jobs (default: 2, this machine's cores)
# exit status: 0 built or reused; 3 a needed tool or source is not available here (the message
# names the Debian package, or the mirror); 1 anything else (the failing step's log is shown).
#
# Debian's patches to CPython are not applied: they adapt it to Debian's glibc multiarch layout.
# The upstream tarball Debian ships (the .orig.tar.gz, checked by apt against the signed Sources
# index and here against the pinned SHA-256) is built as it is, with two one-line changes for
# musl-gcc (see patch_cpython). Not built: ssl, sqlite3, bz2, lzma, readline, curses, tkinter,
# dbm, uuid (lambdaric needs none of them; pip works offline from local files).
# Needs: musl-gcc, gcc, make, apt-get (with a reachable Debian mirror), pkg-config, tar,
# linux-libc-dev (kernel headers, used the way Alpine's linux-headers are) and a host python3
# with pip (for the PyPI sdists). Takes 3 to 5 minutes on 2 cores.
set -euo pipefail

PY_VERSION=3.11.2
PY_SRC_PKG=python3.11
PY_ORIG=python3.11_3.11.2.orig.tar.gz
PY_ORIG_SHA256=2411c74bda5bbcfcddaf4531f66d1adc73f247f529aee981b029513aefdbf849
FFI_ORIG=libffi_3.4.4.orig.tar.gz
FFI_ORIG_SHA256=d66c56ad259a82cf2a9dfc408b32bf5da52371500b84745f7fb8b645712df676
ZLIB_ORIG=zlib_1.2.13.dfsg.orig.tar.bz2
ZLIB_ORIG_SHA256=71feb7947e3c00ef125f83b79a4e529bde31171e5babe48b391f06758d1ab0a1
DEBIAN_SUITE=bookworm
# PyPI: built from sdists by the musl interpreter; setuptools as its (pure-Python) wheel, new
# enough for these sdists' metadata (the one ensurepip brings, 65.5, is not), and the packaging it
# needs (>= 24.2: setuptools >= 71 takes an installed packaging over its own, and a stock Debian
# bookworm python3 has 23.0, which breaks setuptools >= 77).
PYPI_SDISTS=(cffi==2.0.0 pycparser==3.0 simplejson==4.3.0)
PYPI_WHEELS=(setuptools==80.9.0 packaging==25.0)

say() { printf 'build-python.sh: %s\n' "$*" >&2; }
die() { say "ERROR: $*"; exit 1; }
# Exit 3: a tool or a source is not available here (the test skips, quoting the message).
unavailable() { say "UNAVAILABLE: $*"; exit 3; }
now() { date +%s; }

script=$(readlink -f "$0")
key=$(sha256sum "$script" | cut -c1-16)
roots=${LAMBDARIC_ROOTS_DIR:-/var/cache/lambdaric-roots}
jobs=${MUSL_PY_JOBS:-2}
prefix=$roots/musl-python-$PY_VERSION-$key

if [ -f "$prefix/.complete" ] && [ -x "$prefix/bin/python3" ]; then
  say "reusing $prefix (built $(cat "$prefix/.complete"))"
  echo "$prefix"
  exit 0
fi

# ---- preconditions, each with the package that provides it (Debian names)
command -v musl-gcc >/dev/null 2>&1 || unavailable "musl-gcc is not installed (Debian: apt-get install musl-tools)"
[ -e /lib/ld-musl-x86_64.so.1 ] || [ -e /lib/ld-musl-aarch64.so.1 ] \
  || unavailable "the musl dynamic loader /lib/ld-musl-*.so.1 is missing (Debian: apt-get install musl)"
for tool in gcc make readelf apt-get pkg-config tar sha256sum flock; do
  command -v "$tool" >/dev/null 2>&1 || unavailable "$tool is not installed (Debian: apt-get install build-essential binutils pkg-config apt tar coreutils util-linux)"
done
[ -f /usr/include/linux/limits.h ] || unavailable "kernel headers are missing (Debian: apt-get install linux-libc-dev)"
host_python=$(command -v python3) || unavailable "a host python3 with pip is needed to fetch the PyPI sdists"
"$host_python" -m pip --version >/dev/null 2>&1 || unavailable "$host_python has no pip (Debian: apt-get install python3-pip)"

mkdir -p "$roots"
exec 9>"$prefix.lock"
say "taking the build lock $prefix.lock (a concurrent build of the same key waits here)"
flock 9
if [ -f "$prefix/.complete" ]; then  # another process built it while we waited
  say "reusing $prefix (built by a concurrent run)"
  echo "$prefix"
  exit 0
fi

t_start=$(now)
rm -rf "$prefix" "$roots/.musl-python-$key-build."*  # a partial build or work folder of a killed run
work=$(mktemp -d "$roots/.musl-python-$key-build.XXXXXX")
trap 'rm -rf "$work"' EXIT
mkdir -p "$prefix" "$work/src" "$work/pypi" "$work/apt/lists/partial" "$work/apt/parts" "$work/apt/cache"
deps=$prefix/musl-deps  # static zlib and libffi, kernel headers: kept, cffi's build and users' need them
say "building a musl CPython $PY_VERSION into $prefix (work folder $work, $jobs jobs)"

# ---- 1. sources
say "[1/7] Debian sources: $PY_SRC_PKG, libffi, zlib from $DEBIAN_SUITE (apt-get source --download-only, private source list)"
t=$(now)
echo "deb-src [signed-by=/usr/share/keyrings/debian-archive-keyring.gpg] http://deb.debian.org/debian $DEBIAN_SUITE main" \
  >"$work/apt/sources.list"
apt_opts=(-q -o "Dir::Etc::SourceList=$work/apt/sources.list" -o "Dir::Etc::SourceParts=$work/apt/parts"
  -o "Dir::State::Lists=$work/apt/lists" -o "Dir::Cache=$work/apt/cache" -o Debug::NoLocking=1
  -o APT::Sandbox::User=root)
apt-get "${apt_opts[@]}" update >"$work/apt.log" 2>&1 || { cat "$work/apt.log" >&2; unavailable "apt-get update of a private deb-src list for Debian $DEBIAN_SUITE failed (is the Debian mirror reachable?)"; }
(cd "$work/src" && apt-get "${apt_opts[@]}" source --download-only "$PY_SRC_PKG" libffi zlib) >>"$work/apt.log" 2>&1 \
  || { cat "$work/apt.log" >&2; unavailable "apt-get source --download-only $PY_SRC_PKG libffi zlib failed (is the Debian mirror reachable?)"; }
for pair in "$PY_ORIG:$PY_ORIG_SHA256" "$FFI_ORIG:$FFI_ORIG_SHA256" "$ZLIB_ORIG:$ZLIB_ORIG_SHA256"; do
  file=${pair%%:*}
  [ -f "$work/src/$file" ] || die "Debian's source package no longer ships $file (got: $(ls "$work/src" | tr '\n' ' ')); update the pins in $script"
  echo "${pair##*:}  $work/src/$file" | sha256sum -c --quiet - >&2 || die "$file does not match its pinned SHA-256"
done
say "      Debian source packages: $(cd "$work/src" && ls ./*.dsc | sed 's|^\./||; s|\.dsc$||' | tr '\n' ' ')"
say "      PyPI (host pip): sdists ${PYPI_SDISTS[*]}, wheels ${PYPI_WHEELS[*]}"
# A download that fails for want of the network is "unavailable" (exit 3: the tests skip); one that
# fails otherwise (e.g. preparing an sdist's metadata with the host's tools) is an error, with pip's log.
pip_failed() {  # $1: what failed
  cat "$work/pip.log" >&2
  if grep -q -E "NewConnectionError|ConnectTimeout|Max retries exceeded|No matching distribution|Temporary failure in name resolution|Network is unreachable" "$work/pip.log"; then
    unavailable "$1 failed: PyPI is not reachable from here (pip's log above)"
  fi
  die "$1 failed (pip's log above)"
}
"$host_python" -m pip download -q --no-deps --only-binary :all: -d "$work/pypi" "${PYPI_WHEELS[@]}" >"$work/pip.log" 2>&1 \
  || pip_failed "pip download ${PYPI_WHEELS[*]}"
# pip prepares each sdist's metadata; the host's own setuptools (and packaging) may be too old for
# these sdists, so the downloaded ones are used, first on the path (no build isolation: no further downloads).
"$host_python" -m pip install -q --no-deps --no-index --target "$work/host-setuptools" "$work/pypi"/setuptools-*.whl \
  "$work/pypi"/packaging-*.whl >>"$work/pip.log" 2>&1 || pip_failed "unpacking the setuptools and packaging wheels for the host"
PYTHONPATH=$work/host-setuptools "$host_python" -m pip download -q --no-deps --no-build-isolation --no-binary :all: \
  -d "$work/pypi" "${PYPI_SDISTS[@]}" >>"$work/pip.log" 2>&1 || pip_failed "pip download ${PYPI_SDISTS[*]}"
t_sources=$(( $(now) - t ))
say "      sources fetched in ${t_sources}s"

# ---- 2. kernel headers, zlib, libffi (static, -fPIC: linked into the extension modules)
say "[2/7] kernel headers (linux, asm, asm-generic from linux-libc-dev), zlib and libffi with musl-gcc, static"
t=$(now)
mkdir -p "$deps/kernel-include"
ln -sfn /usr/include/linux "$deps/kernel-include/linux"
ln -sfn /usr/include/asm-generic "$deps/kernel-include/asm-generic"
asm=$(ls -d /usr/include/*-linux-gnu/asm | head -n1)
ln -sfn "$asm" "$deps/kernel-include/asm"
export CC=musl-gcc
# -I, not -isystem: CPython's setup.py passes only -I folders of CPPFLAGS on to the modules it builds.
export CPPFLAGS="-I$deps/kernel-include -I$deps/include"
export LDFLAGS="-L$deps/lib"
# pkg-config sees only the musl libraries built here, never the host's glibc ones.
export PKG_CONFIG_LIBDIR=$deps/lib/pkgconfig PKG_CONFIG_PATH=
tar -C "$work" -xf "$work/src/$ZLIB_ORIG"
(cd "$work"/zlib-* && CFLAGS="-O2 -fPIC" ./configure --static --prefix="$deps" && make -j"$jobs" && make install) \
  >"$work/zlib.log" 2>&1 || { tail -n 40 "$work/zlib.log" >&2; die "building zlib failed (log above)"; }
t_zlib=$(( $(now) - t ))
t=$(now)
tar -C "$work" -xf "$work/src/$FFI_ORIG"
(cd "$work"/libffi-* && CFLAGS="-O2 -fPIC" ./configure --prefix="$deps" --disable-shared --enable-static --with-pic \
    --disable-docs --disable-multi-os-directory && make -j"$jobs" && make install) \
  >"$work/libffi.log" 2>&1 || { tail -n 40 "$work/libffi.log" >&2; die "building libffi failed (log above)"; }
t_libffi=$(( $(now) - t ))
say "      zlib in ${t_zlib}s, libffi in ${t_libffi}s"

# ---- 3. CPython
patch_cpython() {
  # configure compares its platform triplet (x86_64-linux-musl, from the C library) with
  # `$CC --print-multiarch`, which musl-gcc answers for its glibc gcc driver: they differ and
  # configure stops. No multiarch, as on Alpine: the triplet stands.
  grep -q 'MULTIARCH=$($CC --print-multiarch 2>/dev/null)' configure || die "configure changed: cannot patch its multiarch check"
  sed -i 's|MULTIARCH=$($CC --print-multiarch 2>/dev/null)|MULTIARCH=|' configure
  # setup.py adds /usr/include/<multiarch> and /usr/lib/<multiarch> (glibc's) to every module's
  # search paths on Debian; for musl that would mix glibc headers in.
  grep -q '^    def add_multiarch_paths(self):$' setup.py || die "setup.py changed: cannot patch add_multiarch_paths"
  sed -i 's/^    def add_multiarch_paths(self):$/&\n        return  # musl build: never the glibc multiarch folders/' setup.py
}
say "[3/7] CPython $PY_VERSION: configure (CC=musl-gcc, no test modules)"
t=$(now)
tar -C "$work" -xf "$work/src/$PY_ORIG"
cd "$work/Python-$PY_VERSION"
patch_cpython
CFLAGS="-g0" ./configure --prefix="$prefix" --disable-test-modules --without-static-libpython --with-ensurepip=install \
  >"$work/cpython-configure.log" 2>&1 || { tail -n 40 "$work/cpython-configure.log" >&2; die "CPython's configure failed (log above)"; }
t_configure=$(( $(now) - t ))
say "      configured in ${t_configure}s; make -j$jobs"
t=$(now)
make -j"$jobs" >"$work/cpython-make.log" 2>&1 || { tail -n 60 "$work/cpython-make.log" >&2; die "CPython's make failed (log above)"; }
t_make=$(( $(now) - t ))
grep -A12 "necessary bits to build these optional modules were not found" "$work/cpython-make.log" | sed 's/^/      /' >&2 || true
grep -E "Failed to build these modules|following modules built successfully but were removed" -A3 "$work/cpython-make.log" >&2 \
  && die "CPython modules failed to build (above)"
say "      made in ${t_make}s; make install (bytecode compiled with -j$jobs; ensurepip installs pip offline)"
t=$(now)
make install COMPILEALL_OPTS="-j$jobs" >"$work/cpython-install.log" 2>&1 \
  || { tail -n 40 "$work/cpython-install.log" >&2; die "CPython's make install failed (log above)"; }
t_install=$(( $(now) - t ))
cd "$work"
py=$prefix/bin/python3
say "      installed in ${t_install}s"

# ---- 4. check it is musl and has what lambdaric needs
say "[4/7] checking the interpreter: musl loader, stdlib modules lambdaric uses"
interp=$(readelf -l "$py" 2>/dev/null | sed -n 's/.*Requesting program interpreter: \(.*\)]/\1/p') || true
case "$interp" in
  */ld-musl-*) say "      ELF interpreter: $interp" ;;
  *) die "$py is not musl-linked (ELF interpreter: ${interp:-unknown})" ;;
esac
"$py" -c '
import importlib, platform, sys
need = ["_socket", "select", "signal", "_signal", "_json", "_posixsubprocess", "math", "binascii", "_struct",
        "_decimal", "_contextvars", "_datetime", "zlib", "_ctypes", "_random", "_sha256", "_blake2", "fcntl",
        "_queue", "_asyncio", "array", "unicodedata", "_pickle", "_multiprocessing", "mmap", "termios"]
missing = []
for name in need:
    try:
        importlib.import_module(name)
    except ImportError as exc:
        missing.append("%s (%s)" % (name, exc))
if missing:
    sys.exit("missing stdlib modules: " + ", ".join(missing))
print("      %s %s, libc_ver() = %r" % (platform.python_implementation(), platform.python_version(), platform.libc_ver()))
' >&2 || die "the musl interpreter lacks modules (above)"

# ---- 5. setuptools, then cffi (_cffi_backend against the static musl libffi)
say "[5/7] pip (musl interpreter, offline): ${PYPI_WHEELS[*]}, then cffi + pycparser from sdists against musl libffi"
t=$(now)
pip_offline=("$py" -m pip install -q --no-index --no-deps --no-build-isolation --disable-pip-version-check --no-cache-dir)
"${pip_offline[@]}" "$work/pypi"/setuptools-*.whl "$work/pypi"/packaging-*.whl >"$work/pip-musl.log" 2>&1 \
  || { cat "$work/pip-musl.log" >&2; die "installing setuptools into the musl interpreter failed"; }
"${pip_offline[@]}" "$work/pypi"/pycparser-*.tar.gz "$work/pypi"/cffi-*.tar.gz >>"$work/pip-musl.log" 2>&1 \
  || { tail -n 60 "$work/pip-musl.log" >&2; die "building cffi for the musl interpreter failed (log above)"; }
t_cffi=$(( $(now) - t ))
"$py" -c 'import _cffi_backend, cffi; print("      cffi %s, _cffi_backend %s" % (cffi.__version__, _cffi_backend.__file__))' >&2 \
  || die "cffi does not import in the musl interpreter"
say "      cffi built and installed in ${t_cffi}s"

# ---- 6. simplejson (its C speedups when they build; pure Python otherwise, as simplejson does)
say "[6/7] simplejson from its sdist"
t=$(now)
"${pip_offline[@]}" "$work/pypi"/simplejson-*.tar.gz >>"$work/pip-musl.log" 2>&1 \
  || { tail -n 40 "$work/pip-musl.log" >&2; die "installing simplejson into the musl interpreter failed (log above)"; }
t_simplejson=$(( $(now) - t ))
"$py" -c 'import simplejson; from simplejson import _speedups; print("      simplejson %s with C speedups" % simplejson.__version__)' >&2 \
  || die "simplejson's C speedups did not build for the musl interpreter"

# ---- 7. record and finish
size=$(du -sh "$prefix" | cut -f1)
total=$(( $(now) - t_start ))
{
  echo "musl CPython $PY_VERSION built $(date -u +%Y-%m-%dT%H:%M:%SZ) by $script (key $key)"
  echo "sources: $(cd "$work/src" && ls ./*.dsc | sed 's|^\./||' | tr '\n' ' ')$(cd "$work/pypi" && ls | tr '\n' ' ')"
  echo "seconds: sources $t_sources, zlib $t_zlib, libffi $t_libffi, cpython configure $t_configure make $t_make install $t_install, cffi $t_cffi, simplejson $t_simplejson, total $total"
  echo "size: $size"
} >"$prefix/BUILDINFO"
say "[7/7] done in ${total}s: $prefix ($size)"
sed 's/^/      /' "$prefix/BUILDINFO" >&2
date -u +%Y-%m-%dT%H:%M:%SZ >"$prefix/.complete"
echo "$prefix"
