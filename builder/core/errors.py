"""One exception hierarchy: every error a user can meet names the bad value and the fix."""


class CgddiError(Exception):
    """Base of every toolkit error; the CLI prints its message and exits 2."""


class ConfigError(CgddiError):
    """Bad configuration: raised before any data or GPU work starts."""


class SourceError(CgddiError):
    """A source folder cannot be read at all (bad rows become rejections instead)."""


class BuildError(CgddiError):
    """A build step failed as a whole (e.g. the output does not load back)."""


class ExportError(CgddiError):
    """An export was refused (untrusted input, an output inside a published folder, an existing output)."""


class SampleRejected(CgddiError):
    """One input that cannot be used; it becomes a `Rejection` with this snake_case `reason`."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class LockError(CgddiError):
    """Another run holds the work folder (its pid, start time and command are named)."""


class PublishError(CgddiError):
    """Publishing was refused or failed; the message says why and what to do."""


class ReleaseError(CgddiError):
    """A published cgDDI release (its files, its models) cannot be read as asked."""


class LeakageError(CgddiError):
    """A model was asked to train on an image of the held-out test split (the leakage rule)."""


class MaskError(SampleRejected, ValueError):
    """A mask that cannot be used; `reason` is the snake_case rejection reason."""


class PlacementError(SampleRejected, ValueError):
    """A (base, donor) pair that cannot be mapped; `reason` is the snake_case rejection reason."""


class ReviewError(ConfigError):
    """A review decisions file or review request that cannot be used (bad row, unknown id or criterion)."""


class IntegrityProblem(CgddiError):
    """A published file that cannot be trusted (unreadable, over the size limits, bad values): the audit
    reports it as a `problem` of `path` (exit 1); other readers refuse the version."""

    def __init__(self, problem: str, path: str, detail: str):
        super().__init__(f"{path}: {detail}")
        self.problem = problem
        self.path = path
        self.detail = detail

    def to_json(self) -> dict:
        return {"problem": self.problem, "path": self.path, "detail": self.detail}
