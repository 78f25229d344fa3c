"""Slim, reproducible container images of a Go program, built with Dagger three ways (naive,
builder pattern, multistage) and measured side by side."""

__version__ = "0.1.0"  # the package's version (pyproject reads it), named in the provenance
