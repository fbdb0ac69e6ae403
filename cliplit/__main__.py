"""`python -m cliplit ...` runs the `cliplit` command."""

import sys

from .interfaces.cli import main

sys.exit(main())
