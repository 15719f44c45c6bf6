"""Sample data shipped with damo-pipe (see docs/collect.md for how it was recorded)."""
from pathlib import Path

SAMPLE_NAME = "sample.h5"


def sample_path() -> str:
    """Path of the bundled sample archive (the README demo's default input)."""
    return str(Path(__file__).with_name(SAMPLE_NAME))
