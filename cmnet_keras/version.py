"""The package version, recorded in every cache and run it writes."""

__version__ = "0.1.0"
