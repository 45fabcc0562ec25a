"""`python -m bench [--smoke] [--sizes ...] [--pg URL]`: see bench/README.md."""

import sys

from .suite import main

sys.exit(main())
