"""Packaging for lambdaric.

The native hot path (``native/``) is optional: when it cannot be built, the
package still installs and runs on its pure-Python transport.
"""
import os
import re

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))


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
    python_requires=">=3.9",
    packages=find_packages(include=["lambdaric", "lambdaric.*"]),
    install_requires=["simplejson>=3.18", "requests>=2.28"],
    extras_require={
        "test": ["pytest>=7", "hypothesis>=6", "boto3>=1.26", "cffi>=1.15"],
    },
    entry_points={"console_scripts": ["lambdaric=lambdaric.__main__:main"]},
    classifiers=[
        "Programming Language :: Python :: 3",
        "Operating System :: POSIX :: Linux",
        "License :: OSI Approved :: Apache Software License",
    ],
)
