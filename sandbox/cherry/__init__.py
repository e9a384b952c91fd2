"""A local stand-in for Cherry's partner API (see openapi.yaml and docs/cherry-contract.md).

Public entry points: `create_app(CherrySandboxConfig(...))`, `sandbox.cherry.testing.CherrySandbox`
(start/stop on a free loopback port, admin helpers), and `python -m sandbox.cherry` (cli.main).
"""

from sandbox.cherry.app import create_app
from sandbox.cherry.config import CherrySandboxConfig

__all__ = ["CherrySandboxConfig", "create_app"]
