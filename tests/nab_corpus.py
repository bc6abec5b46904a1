"""The NAB tuning corpus beside the repository (a development checkout has it; a clean clone on
CI may not): its path, and the mark that skips a test without it."""

from __future__ import annotations

from pathlib import Path

import pytest

CORPUS = Path(__file__).resolve().parents[1].parent / "shared" / "datasets" / "nab-tuning"
needs_corpus = pytest.mark.skipif(not CORPUS.is_dir(), reason="NAB tuning corpus not beside the repository")
