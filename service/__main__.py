"""`python -m service`: the same command line as `amili-sync`."""

import sys

from service.entrypoints.cli import main

sys.exit(main())
