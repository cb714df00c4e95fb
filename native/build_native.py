"""cffi build script for ``lambdaric._native`` (work in progress: the response-head parser).

Not yet wired into setup.py or a transport; tests build it into a temporary folder with
``build(tmpdir)`` to check it against the pure-Python parser. Flags: C99, -O2, NDEBUG,
hidden visibility, warnings on (errors with LAMBDARIC_NATIVE_WERROR=1, as CI will).
"""
import os

from cffi import FFI

HERE = os.path.dirname(os.path.abspath(__file__))

CDEF = """
typedef struct { long off; long len; int present; } lr_span;
typedef struct {
    int status;
    int header_count;
    long content_length;
    long error_at;
    lr_span headers[12];
} lr_head;
int lr_parse_head(const char *buf, size_t len, lr_head *out);
int lr_content_length(const char *buf, const lr_head *head, long long *value);
"""


def make_ffi(module_name: str = "lambdaric._native") -> FFI:
    ffi = FFI()
    ffi.cdef(CDEF)
    flags = ["-std=c99", "-O2", "-DNDEBUG", "-fvisibility=hidden", "-Wall", "-Wextra"]
    if os.environ.get("LAMBDARIC_NATIVE_WERROR") == "1":
        flags.append("-Werror")
    flags += os.environ.get("LAMBDARIC_NATIVE_CFLAGS", "").split()
    ffi.set_source(
        module_name,
        '#include "lr_http.h"',
        sources=[os.path.join(HERE, "lr_http.c")],
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
