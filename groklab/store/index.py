"""The runs index: every run directory under a root, queryable without opening them one by one.

``runs(root)`` is a DataFrame with one row per run: ``dir``, the summary's numbers and the
config flattened to dotted keys (``task.p``, ``model.alpha``, ...). ``query(root, sql)`` runs
SQL with DuckDB over two tables: ``runs`` (that frame) and ``metrics`` (every run's
``metrics.parquet``, read in place, with its ``dir``). Dotted column names need double
quotes in SQL: ``SELECT "model.alpha", median(t_test_acc) FROM runs GROUP BY 1``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Union

import pandas as pd

from groklab.errors import GroklabError

__all__ = ["run_dirs", "runs", "query"]


def run_dirs(root: Union[str, Path]) -> list[Path]:
    """Every finished run directory (config.json and summary.json) under ``root``, sorted."""
    root = Path(root)
    if not root.is_dir():
        raise GroklabError(f"{root} is not a directory")
    return sorted(p.parent for p in root.rglob("summary.json") if (p.parent / "config.json").is_file())


def runs(root: Union[str, Path]) -> pd.DataFrame:
    """One row per finished run under ``root``: ``dir``, summary numbers, flattened config keys.
    Runs whose files cannot be read are skipped (a sweep may hold a damaged or foreign one)."""
    rows = []
    for directory in run_dirs(root):
        try:
            config = json.loads((directory / "config.json").read_text())
            summary = json.loads((directory / "summary.json").read_text())
        except (OSError, json.JSONDecodeError):
            continue
        flat = pd.json_normalize(config, sep=".").iloc[0].to_dict()
        flat = {k: (json.dumps(v) if isinstance(v, (list, dict)) else v) for k, v in flat.items()}
        rows.append({"dir": str(directory), **{k: v for k, v in summary.items() if not isinstance(v, (list, dict))},
                     **flat})
    return pd.DataFrame(rows)


def _readable_parquet(path: str) -> bool:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
        return True
    except Exception:  # missing or damaged: left out of the metrics table
        return False


# A step a run never reached is NULL; SQL's median would skip it and report the median of the runs
# that got there. This one counts it as later than every step (censored) and gives NULL ("never")
# when its middle run never got there; the lower median for an even count, a step some run has.
CENSORED_MEDIAN = ("CREATE MACRO censored_median(x) AS nullif(quantile_disc(coalesce(CAST(x AS DOUBLE), "
                   "'infinity'::DOUBLE), 0.5), 'infinity'::DOUBLE)")


def query(root: Union[str, Path], sql: str) -> pd.DataFrame:
    """Run ``sql`` (DuckDB) over the tables ``runs`` and ``metrics`` of the runs under ``root``.
    Besides DuckDB's functions, ``censored_median(x)`` takes the median of times with NULL (never
    reached) counted as later than any, NULL when the middle run never got there."""
    import duckdb

    table = runs(root)
    con = duckdb.connect()
    try:
        con.execute(CENSORED_MEDIAN)
        con.register("runs", table)
        files = [f for f in (str(Path(d) / "metrics.parquet") for d in table.get("dir", [])) if _readable_parquet(f)]
        if files:
            listing = ", ".join("'" + f.replace("'", "''") + "'" for f in files)
            con.execute(f"CREATE VIEW metrics AS SELECT * EXCLUDE (filename), regexp_replace(filename, "
                        f"'/metrics.parquet$', '') AS dir FROM read_parquet([{listing}], union_by_name=true, "
                        f"filename=true)")
        try:
            return con.execute(sql).df()
        except duckdb.Error as e:
            raise GroklabError(f"query failed: {str(e).splitlines()[0]}") from None
    finally:
        con.close()
