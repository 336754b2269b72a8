"""Local simulators of the external systems OrderHub talks to (Tmall TOP gateway, Qimen WMS), for tests and demos.

Wire-faithful to ``specs/platform-apis.md``, seeded for determinism, with fault knobs and a record of truth. See
``sandbox/README.md`` for endpoints, credentials and knobs. Importing this package does no I/O and starts nothing.
"""

from sandbox.app import SandboxApp
from sandbox.server import SandboxHandle, running_sandbox, serve

__all__ = ["SandboxApp", "SandboxHandle", "running_sandbox", "serve"]
