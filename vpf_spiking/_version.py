"""The package version (one place; read by the CLI and recorded in sweep results)."""

__version__ = "0.1.0"
