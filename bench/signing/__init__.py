"""python -m bench signing: what --sign-key adds to --publish, against cosign sign as a second
step (bench/signing/run.py)."""
