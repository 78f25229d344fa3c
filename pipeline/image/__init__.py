"""Image bytes: OCI tarballs read and made reproducible, a binary's build info, the SBOM,
the layer memo. Pure functions over files and bytes: no Dagger, no network, no terminal.
May import the leaves (pipeline.errors, outputs, provenance) and nothing else of pipeline."""
