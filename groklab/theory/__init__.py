"""Theory of the lazy-to-rich toy model: the infinite-data (online) limit and the finite-P/D DMFT.

``dmft(...)`` solves the dynamical mean field theory at finite P/D (docs/theory.md);
:mod:`groklab.theory.online` holds the infinite-data moment flows.
"""

from groklab.theory.dmft import DMFTSolution, dmft

__all__ = ["dmft", "DMFTSolution"]
