"""omneo-bulk: bulk benefit issuance and redemption reconciliation for Omneo, in DuckDB.

The command line lives in `pipeline.cli`; each stage is a module with a `run` function.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("omneo-bulk")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0+source"
