"""`python -m sandbox.cherry`: serve a Cherry sandbox (see sandbox.cherry.cli)."""

import sys

from sandbox.cherry.cli import main

sys.exit(main())
