"""``python -m latentshape check | bench | demo``: the command line."""

import sys

from .cli import main

sys.exit(main())
