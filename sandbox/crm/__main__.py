"""`python -m sandbox.crm`: run the CRM sandbox in the foreground."""

import sys

from sandbox.crm.cli import main

sys.exit(main())
