"""The one exception type users see: bad input, reported as a single line by the CLI."""


class GroklabError(ValueError):
    """A problem with what the user asked for (config, preset, run directory, ...).

    The message is one line that names the problem and what is allowed; the CLI prints it
    as ``groklab: error: <message>`` and exits with code 2, without a traceback.
    """
