"""`python -m kubehatch.imagebuild` (or hack/images/ocibuild.py): the builder's CLI."""

import sys

from .cli import main

sys.exit(main())
