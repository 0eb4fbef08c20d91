"""User-facing errors: the CLI prints their message on one line and exits with their code."""

EXIT_OK = 0
EXIT_VIOLATION = 1  # the model does not fit / a gate failed
EXIT_BAD_INPUT = 2


class EdgekdError(Exception):
    """A problem with the user's input, reported without a traceback."""

    exit_code = EXIT_BAD_INPUT


class RecipeError(EdgekdError):
    pass


class ModelError(EdgekdError):
    pass
