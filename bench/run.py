#!/usr/bin/env python3
"""``make bench``: every measure, one table (see bench/README.md). ``--help`` for counts."""

import sys
from pathlib import Path

# Run as a script (python bench/run.py): make the repository root importable for ``bench``.
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.main import main

if __name__ == "__main__":
    sys.exit(main())
