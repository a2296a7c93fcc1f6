"""``python -m kubehatch.cli``: the same as the ``kubehatch`` script."""

import sys

from kubehatch.cli import main

sys.exit(main())
