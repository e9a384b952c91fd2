"""CRM sandbox: a local HTTP stand-in for the HighLevel (LeadConnector) API v2 subset Cherry Sync uses.

`create_app(config)` builds the FastAPI app; `sandbox.crm.testing.start_crm_sandbox` runs it on a
loopback port for tests; `python -m sandbox.crm` runs it for people. See docs/crm-sandbox.md.
"""

from sandbox.crm.app import create_app
from sandbox.crm.config import CrmSandboxConfig

__all__ = ["CrmSandboxConfig", "create_app"]
