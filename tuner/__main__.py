"""`python -m tuner ...` entry point."""

import sys

from tuner.cli import main

sys.exit(main())
