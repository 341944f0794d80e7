"""Local fakes of the WeChat mini-program and WeCom server APIs for tests and demos.

They run in a separate process (`python -m app.sandbox`, or `start_sandbox_process()`),
speak the real wire formats, and add a `/sandbox/` control API for steering them.
This package imports nothing else from `app`.
"""

from .process import SandboxProcess, start_sandbox_process

__all__ = ["SandboxProcess", "start_sandbox_process"]
