"""The one exception type users see: bad input, reported as a single line by the CLI."""


class GroklabError(ValueError):
    """A problem with what the user asked for (config, preset, run directory, ...).

    The message is one line that names the problem and what is allowed; the CLI prints it
    as ``groklab: error: <message>`` and exits with code 2, without a traceback.
    """


class RunInterrupted(Exception):
    """Ctrl-C during a run. ``checkpoint_step`` is the step saved at the interruption (the
    run resumes exactly from it), or None when nothing could be resumed."""

    def __init__(self, run_dir, checkpoint_step):
        self.run_dir = run_dir
        self.checkpoint_step = checkpoint_step
        super().__init__(f"interrupted at step {checkpoint_step}" if checkpoint_step is not None else "interrupted")
