"""`python -m tinyviz ...`: see `tinyviz.cli`."""

import sys

from .cli import main

sys.exit(main())
