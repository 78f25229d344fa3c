"""Slim, reproducible container images of a Go program, built with Dagger three ways (naive,
builder pattern, multistage) and measured side by side."""
