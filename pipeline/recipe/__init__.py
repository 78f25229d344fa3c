"""Lazy descriptions of containers: the Go source narrowed to what a build reads (source),
the stages the variants share (stages), one recipe per variant (variants) and the bases
pinned by digest (pins). Nothing here awaits an engine but what a recipe must read on its
way. May import the shared vocabulary and the leaves; never the engine's session, a
registry or a flow."""
