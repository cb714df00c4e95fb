"""cffi build script for ``lambdaric._native``: the Runtime API exchange in C.

setup.py builds it through ``cffi_modules`` (and carries on without it when no compiler
is there); tests build it into a temporary folder with ``build(tmpdir)``.
Flags: C99, -O2, NDEBUG, hidden visibility, warnings on (errors with
LAMBDARIC_NATIVE_WERROR=1, as CI sets); LAMBDARIC_NATIVE_CFLAGS / _LDFLAGS add more
(the sanitizer build of CI uses them).
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCES = ("lr_http.c", "lr_conn.c")


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
    flags = ["-std=c99", "-O2", "-DNDEBUG", "-g0", "-fvisibility=hidden", "-Wall", "-Wextra"]
    if os.environ.get("LAMBDARIC_NATIVE_WERROR") == "1":
        flags.append("-Werror")
    flags += os.environ.get("LAMBDARIC_NATIVE_CFLAGS", "").split()
    ffi.set_source(
        module_name,
        '#include "lr_http.h"',
        sources=[os.path.join(HERE, name) for name in SOURCES],
        include_dirs=[HERE],
        extra_compile_args=flags,
        extra_link_args=os.environ.get("LAMBDARIC_NATIVE_LDFLAGS", "").split(),
    )
    return ffi


def build(tmpdir: str, module_name: str = "_lr_native_test") -> str:
    """Compile into ``tmpdir``; returns the path of the extension module."""
    return make_ffi(module_name).compile(tmpdir=tmpdir, verbose=False)


ffibuilder = make_ffi()

if __name__ == "__main__":
    ffibuilder.compile(verbose=True)
