"""``python -m benchmarks [--quick]``: run every benchmark (see benchmarks/suite.py)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.suite import main  # noqa: E402

sys.exit(main())
