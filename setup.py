"""Packaging for lambdaric.

The native hot path (``native/``) is optional: when it cannot be built, the
package still installs and runs on its pure-Python transport and simplejson.
Two modules: ``lambdaric._native`` (cffi, the Runtime API exchange) and
``lambdaric._codec`` (a limited-API extension, the JSON codec; needs no cffi).
"""
import os
import re
import sys

from setuptools import Extension, find_packages, setup
from setuptools.command.build_ext import build_ext

HERE = os.path.dirname(os.path.abspath(__file__))


def drop_rpath(compiler) -> None:  # type: ignore[no-untyped-def]
    """Take the build machine's ``-Wl,-rpath,...`` out of the link command. Some Pythons put
    it in LDSHARED (pyenv's: its own lib folder), and a module linked with it carries a
    RUNPATH that names a folder of the build machine; lambdaric's modules need only libc."""
    linker = getattr(compiler, "linker_so", None)
    if linker:
        compiler.linker_so = [arg for arg in linker if not arg.startswith(("-Wl,-rpath", "-Wl,-R", "-R/"))]


class OptionalBuildExt(build_ext):
    """Build the native module if it can be built; never fail the installation over it.

    Without a C compiler (or with a broken one) lambdaric runs on its pure-Python
    transport, so a failed compile is a warning, not an error. LAMBDARIC_NATIVE_REQUIRED=1
    (CI) turns it back into an error, so a broken build cannot pass unnoticed.
    """

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # distutils raises several unrelated types here
            self._skip(exc)

    def build_extension(self, ext) -> None:  # type: ignore[no-untyped-def]
        drop_rpath(self.compiler)
        try:
            super().build_extension(ext)
        except Exception as exc:
            self._skip(exc, ext.name)

    def _skip(self, exc: Exception, name: str = "") -> None:
        if os.environ.get("LAMBDARIC_NATIVE_REQUIRED") == "1":
            raise exc
        if name == "lambdaric._codec":
            print("WARNING: lambdaric's native JSON codec was not built (%s: %s); "
                  "lambdaric will use simplejson." % (type(exc).__name__, exc))
            return
        print("WARNING: lambdaric's native module was not built (%s: %s); "
              "lambdaric will use its pure-Python transport." % (type(exc).__name__, exc))


def codec_extension() -> Extension:
    """``lambdaric._codec`` from native/lr_json.c: limited API (abi3), the flags of build_native."""
    sys.path.insert(0, os.path.join(HERE, "native"))
    try:
        import build_native
    finally:
        sys.path.pop(0)
    return Extension("lambdaric._codec", sources=["native/lr_json.c"], py_limited_api=True,
                     extra_compile_args=build_native.codec_flags(), extra_link_args=build_native.link_flags())


def native_options() -> dict:
    """The codec extension and cffi_modules for the native module (the latter only with cffi), or
    nothing when LAMBDARIC_NO_NATIVE=1 (a pure-Python install on purpose)."""
    if os.environ.get("LAMBDARIC_NO_NATIVE") == "1":
        return {}
    options = {"ext_modules": [codec_extension()], "cmdclass": {"build_ext": OptionalBuildExt}}
    try:
        import cffi  # noqa: F401
    except ImportError:
        print("WARNING: cffi is not installed: lambdaric's native module is not built.")
    else:
        options["cffi_modules"] = ["native/build_native.py:ffibuilder"]
    if has_bdist_wheel():
        # both modules use only the stable ABI (``*.abi3.so``): one wheel serves 3.9 and later
        options["options"] = {"bdist_wheel": {"py_limited_api": "cp39"}}
    return options


def has_bdist_wheel() -> bool:
    """Whether a wheel can be built here (setuptools >= 70.1 has the command, else ``wheel``):
    options for a command that does not exist make setuptools fail."""
    for module in ("setuptools.command.bdist_wheel", "wheel.bdist_wheel"):
        try:
            __import__(module)
            return True
        except ImportError:
            pass
    return False


def read_version() -> str:
    with open(os.path.join(HERE, "lambdaric", "__init__.py"), encoding="utf-8") as f:
        return re.search(r'^__version__ = "([^"]+)"', f.read(), re.M).group(1)


def read_readme() -> str:
    with open(os.path.join(HERE, "README.md"), encoding="utf-8") as f:
        return f.read()


setup(
    name="lambdaric",
    version=read_version(),
    description="A fast, portable Python Runtime Interface Client for AWS Lambda container images",
    long_description=read_readme(),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    license_files=["LICENSE"],
    keywords=["aws", "lambda", "runtime interface client", "container images", "serverless"],
    python_requires=">=3.9",
    packages=find_packages(include=["lambdaric", "lambdaric.*"]),
    # the sample events (lambdaric/events/*.json): in the sdist and the wheel
    package_data={"lambdaric.events": ["*.json"]},
    install_requires=["simplejson>=3.18", "requests>=2.28", "cffi>=1.15"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "boto3>=1.26", "cffi>=1.15", "build>=1"],
        # what examples/ and their tests use (the runtime itself needs none of it)
        "examples": ["aws-lambda-powertools[parser,tracer]>=3",
                     "fastapi>=0.100", "mangum>=0.17", "python-multipart>=0.0.13", "moto[server]>=5", "boto3>=1.28",
                     "Flask>=2.3", "apig-wsgi>=2.18", "Django>=4.2"],
        # the browser tests (tests/test_browser_*.py): Playwright's Python client only; the browser
        # is Debian's chromium (apt-get install chromium), never one Playwright downloads
        "browser": ["playwright>=1.40"],
        # durable functions on the emulator (docs/durable.md): the SDK the handlers use, and AWS's
        # durable execution service the emulator runs on loopback (both need Python 3.11+)
        "durable": ["aws-durable-execution-sdk-python>=3; python_version>='3.11'",
                    "aws-durable-execution-sdk-python-testing>=1.4; python_version>='3.11'"],
    },
    **native_options(),
    entry_points={"console_scripts": ["lambdaric=lambdaric.__main__:main"]},
    # wheels: cp39-abi3 for manylinux2014 and musllinux_1_2, x86_64 and aarch64 (images/release/build.py);
    # the architectures are in the wheel tags (no trove classifier names them)
    classifiers=[
        "Intended Audience :: Developers",
        "Operating System :: POSIX :: Linux",
        "Programming Language :: C",
        "Programming Language :: Python :: 3",
        "Programming Language :: Python :: 3 :: Only",
        "Programming Language :: Python :: 3.9",
        "Programming Language :: Python :: 3.10",
        "Programming Language :: Python :: 3.11",
        "Programming Language :: Python :: 3.12",
        "Programming Language :: Python :: 3.13",
        "Programming Language :: Python :: 3.14",
        "Programming Language :: Python :: Implementation :: CPython",
        "Topic :: Software Development :: Libraries",
        "Topic :: System :: Distributed Computing",
    ],
)
