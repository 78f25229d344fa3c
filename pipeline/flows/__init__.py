"""What happens once a build starts: the session opened, the recipe run, the Go caches
restored and saved through a registry (gocache), what was described delivered as a tarball,
into Docker or to a registry (deliver), timed step by step (run). May import every room
below it (recipe, engine, registry, image) and the shared vocabulary; never the CLI."""
