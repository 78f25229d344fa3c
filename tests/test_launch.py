"""pipeline.cli.launch: destinations are checked before any engine work. (The SDK's import
without its runtime checks is pipeline.engine.sdk's, tested in tests/test_sdk.py.)"""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
