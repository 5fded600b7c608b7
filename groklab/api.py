"""The Python API: ``groklab.run(config)`` trains one experiment, ``groklab.load(dir)`` reads it
back, ``groklab.resume(dir)`` continues it. The implementation lives in :mod:`groklab.experiment`."""

from groklab.experiment import Run, as_config, load, resume, run

__all__ = ["Run", "run", "resume", "load", "as_config"]
