"""Talking to registries: the transport hosted registries need (tokens, timeouts, retries:
transport, with the login and deadline it is given, access, and its answers as one line,
answers), pushes and pulls of images and artifacts (remote), an image's referrers, its SBOM
and its signatures' bundles (referrers, bundles), its tags (tagging) and cosign's signature
tags (signatures), the bases' own layers (bases), blocking work bounded in time (threads).
The only importers of oras and requests. May import the image room, the shared vocabulary
and the leaves; never Dagger, a recipe or a flow."""
