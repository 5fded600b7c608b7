"""Figures written to files: one run (:mod:`.curves`), several runs and a recipe's seed bands
(:mod:`.figures`), a sweep (:mod:`.sweeps`). Matplotlib draws with the Agg backend, chosen
here once for the package: files only, never a display."""

import matplotlib

matplotlib.use("Agg")
