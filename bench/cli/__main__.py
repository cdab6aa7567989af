"""`python -m bench.cli` is the `tgrpo-bench` console script."""

import sys

from bench.cli import main

sys.exit(main())
