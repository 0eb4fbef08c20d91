"""User-facing errors and the exit-code contract: the CLI prints an error's message on one line and exits with its
code (0 ok · 1 a budget or gate failed · 2 bad input or environment · 3 a bug · 130 interrupted)."""

import errno

EXIT_OK = 0
EXIT_VIOLATION = 1  # the model does not fit / a gate failed
EXIT_BAD_INPUT = 2
EXIT_BUG = 3
EXIT_INTERRUPTED = 130


class EdgekdError(Exception):
    """A problem with the user's input, reported without a traceback."""

    exit_code = EXIT_BAD_INPUT


class RecipeError(EdgekdError):
    pass


class ModelError(EdgekdError):
    pass


# The operating system refusing a file (full disk, read-only, permissions, quota): the environment, not a bug.
ENVIRONMENT_ERRNOS = {errno.ENOSPC, errno.EROFS, errno.EACCES, errno.EPERM, errno.EDQUOT, errno.EFBIG}


def environment_error(path, err: OSError, doing: str = "write") -> EdgekdError:
    """An OS refusal as the one line that names the file and what to do."""
    return EdgekdError(f"{path}: cannot {doing} ({err.strerror or first_line(err)}); check the space, permissions and "
                       "quota there, or choose another location")


def first_line(err: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (its type name when the message is empty), for one-line errors
    that quote what a library said."""
    text = str(err).strip()
    return (text.splitlines()[0] if text else type(err).__name__)[:limit]
