"""Talking to registries: the transport hosted registries need (tokens, timeouts, retries),
pushes and pulls of images and artifacts (remote), the bases' own layers (bases), blocking
work bounded in time (threads). The only importers of oras and requests. May import the
image room, the shared vocabulary and the leaves; never Dagger, a recipe or a flow."""
