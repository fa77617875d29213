"""The service's version, written in one place: `version` in pyproject.toml, read here from the
installed package's metadata (the image installs the package, so it is always there)."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

DISTRIBUTION = "amili-customer-sync"


def package_version() -> str:
    try:
        return version(DISTRIBUTION)
    except PackageNotFoundError:  # a source tree that was never installed (not a supported way to run)
        return "0+unknown"


VERSION = package_version()
