"""`python -m objectives_pipeline.sandbox`: the sandbox CLI."""

import sys

from objectives_pipeline.sandbox.cli import main

sys.exit(main())
