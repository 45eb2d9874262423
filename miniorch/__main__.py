"""`python -m miniorch`: the same entry point as the `miniorch` console script."""

import sys

from miniorch.cli.main import main

sys.exit(main())
