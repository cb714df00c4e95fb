"""Build of the native modules: ``lambdaric._native`` (cffi: the Runtime API exchange in C) and
``lambdaric._codec`` (a limited-API extension: the JSON codec, ``lr_json.c``).

setup.py builds ``_native`` through ``cffi_modules`` and ``_codec`` as an ``Extension`` with
``codec_flags()`` (and carries on without either when no compiler is there); tests build them
into a temporary folder with ``build(tmpdir)`` and ``build_codec(tmpdir)``.
Flags: C99, -O2, NDEBUG, hidden visibility, warnings on (errors with
LAMBDARIC_NATIVE_WERROR=1, as CI sets); LAMBDARIC_NATIVE_CFLAGS / _LDFLAGS add more
(the sanitizer build of CI uses them).
"""
import os
import shlex
import subprocess
import sysconfig

try:
    from cffi import FFI
except ImportError:  # the codec builds without cffi (setup.py imports this file for codec_flags)
    FFI = None

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("lr_http.c", "lr_conn.c")
CODEC_SOURCE = "lr_json.c"


def base_flags() -> list:
    """The compiler flags of both modules (see the top); LAMBDARIC_NATIVE_CFLAGS last."""
    flags = ["-std=c99", "-O2", "-DNDEBUG", "-g0", "-fvisibility=hidden", "-Wall", "-Wextra"]
    if os.environ.get("LAMBDARIC_NATIVE_WERROR") == "1":
        flags.append("-Werror")
    return flags + os.environ.get("LAMBDARIC_NATIVE_CFLAGS", "").split()


def codec_flags() -> list:
    """Compiler flags of ``lambdaric._codec`` (setup.py's Extension and ``build_codec``)."""
    return base_flags()


def link_flags() -> list:
    return os.environ.get("LAMBDARIC_NATIVE_LDFLAGS", "").split()


def build_codec(tmpdir: str) -> str:
    """Compile ``lr_json.c`` into ``tmpdir/_codec.abi3.so`` with the interpreter's compiler and
    shared-object flags (``$CC`` overrides the compiler) and ``codec_flags()``; returns its path.
    Import it as ``_codec`` with tmpdir on sys.path, or copy it to ``lambdaric/``."""
    cc = shlex.split(os.environ.get("CC") or sysconfig.get_config_var("CC") or "cc")
    ccshared = shlex.split(sysconfig.get_config_var("CCSHARED") or "-fPIC")
    out = os.path.join(tmpdir, "_codec.abi3.so")
    cmd = cc + ccshared + ["-I", sysconfig.get_paths()["include"]] + codec_flags() + [
        os.path.join(HERE, CODEC_SOURCE), "-shared", "-o", out] + link_flags()
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, universal_newlines=True)
    if proc.returncode != 0:
        raise RuntimeError("building the codec failed: %s\n%s" % (" ".join(cmd), proc.stdout))
    return out


def header_cdef() -> str:
    """The declarations of lr_http.h for cffi: the header is the one source of truth
    (preprocessor lines other than integer #defines are dropped; cffi strips comments)."""
    with open(os.path.join(HERE, "lr_http.h")) as f:
        lines = [
            line
            for line in f
            if not line.startswith(("#ifndef", "#endif", "#include")) and line.strip() != "#define LR_HTTP_H"
        ]
    return "".join(lines)


def make_ffi(module_name: str = "lambdaric._native") -> FFI:
    ffi = FFI()
    ffi.cdef(header_cdef())
    flags = base_flags()
    ffi.set_source(
        module_name,
        '#include "lr_http.h"',
        sources=[os.path.join(HERE, name) for name in SOURCES],
        include_dirs=[HERE],
        extra_compile_args=flags,
        extra_link_args=link_flags(),
    )
    return ffi


def build(tmpdir: str, module_name: str = "_lr_native_test") -> str:
    """Compile into ``tmpdir``; returns the path of the extension module."""
    return make_ffi(module_name).compile(tmpdir=tmpdir, verbose=False)


if FFI is not None:
    ffibuilder = make_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
