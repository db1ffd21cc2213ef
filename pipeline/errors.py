"""Domain errors raised by the pipeline core.

The CLI turns each into one clear line and an exit status; nothing else catches them.
"""


def first_line(error: BaseException) -> str:
    """The first line of an exception's message (its type's name when it has none)."""
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__


class PipelineError(Exception):
    """Base for every error the CLI reports as a one-line message."""

    exit_code = 1
    hint: str | None = None


class InputError(PipelineError):
    """An input file or folder cannot be read: names the file and the fault."""


class MissingDatasetError(InputError):
    """A dataset a stage needs has no file in the input folder."""


class RejectRatioExceeded(PipelineError):
    """More rows were rejected than --max-reject-ratio allows."""


class RuleError(PipelineError):
    """A JsonLogic rule is malformed or uses an operator the compiler does not support."""


class CampaignError(PipelineError):
    """A campaign in the campaigns file is invalid: names the campaign."""


class StateInUse(PipelineError):
    """Another run holds the issuance state folder."""


class ConfigError(PipelineError):
    """A config file or option value is invalid."""

    exit_code = 2


class QueryError(PipelineError):
    """A query against a run's warehouse failed, or there is no warehouse: a usage error."""

    exit_code = 2


class SparkError(PipelineError):
    """Spark could not start, or its JVM stopped under a command (`--engine spark`)."""

    hint = "a rerun into the same --out picks up where it stopped"


class RunFolderInUse(PipelineError):
    """Another command is writing the same run folder."""


class RunFolderError(PipelineError):
    """A run folder's manifest or commit journal cannot be read: names the file."""


class StateError(PipelineError):
    """A file of the issuance state cannot be read: names it and what to do."""


class PushError(PipelineError):
    """A push cannot start or go on: a bad payload line, journal or setting (exit 1)."""


class AuthError(PushError):
    """Omneo refused the token (401/403): the push stops at once (exit 1)."""


class GuardRefused(PushError):
    """Tonight's benefits are far above the recent runs' median; --force sends them anyway."""
