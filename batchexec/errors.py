"""The batchexec exception tree.

    BatchExecError
    ├── BatchConfigError    a setting or a task's executor_config is wrong (fatal for that job/startup)
    └── SubmitError         AWS refused or failed a SubmitJob; ``retryable`` says whether to try again
"""

from __future__ import annotations

from edgeexec.errors import ConfigError, EdgeExecError


class BatchExecError(EdgeExecError):
    """Root of every error batchexec raises on purpose."""


class BatchConfigError(BatchExecError, ConfigError):
    """The message names the option or executor_config key and how to fix it."""


class SubmitError(BatchExecError):
    def __init__(self, message: str, *, retryable: bool, reload_credentials: bool = False,
                 throttled: bool = False) -> None:
        super().__init__(message)
        self.retryable = retryable
        self.reload_credentials = reload_credentials
        self.throttled = throttled
        """AWS asked us to slow down: retried without spending one of the job's attempts."""
