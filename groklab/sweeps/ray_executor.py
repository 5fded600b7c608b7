"""Run jobs on a Ray cluster, in chunks: each Ray task trains a few packs of jobs (a lone job,
or several trained as one ensemble, see :func:`groklab.sweeps.executor.pack_jobs`) one after
another in one torch thread and streams back each job's outcome as it finishes.

Ray is an optional extra (``pip install groklab[ray]``); this module imports it only when
called, so the default (local) path never needs it. A job's directory is made absolute before
it leaves this machine, so on a cluster it must be on storage every node sees at the same path
(and groklab, with any extension module, must be importable on every node).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import os
from pathlib import Path
from typing import Any, Callable, Iterator, Optional, Sequence

from groklab.errors import GroklabError
from groklab.sweeps.executor import Job, Outcome, extension_modules, import_modules, run_pack

__all__ = ["chunk_size", "chunks", "run_chunk", "execute_ray", "import_ray"]

CHUNKS_PER_CPU = 2  # a few chunks per CPU: large enough tasks, yet an even finish across the cluster


def import_ray():
    """The ``ray`` module, or a one-line :class:`GroklabError` saying how to install it."""
    try:
        import ray
    except ImportError:
        raise GroklabError("the ray executor needs Ray: pip install 'groklab[ray]'") from None
    return ray


def chunk_size(n_jobs: int, cpus: float) -> int:
    """Packs per Ray task when none is given: about ``CHUNKS_PER_CPU`` chunks for each CPU of
    the cluster, and at least one pack per chunk. (Every pack is one or more whole training
    runs, far above the ~10 ms under which Ray's guidance says a task gains nothing; chunking
    spares the per-task overhead and keeps one worker on one pack after another.)"""
    return max(1, math.ceil(n_jobs / max(1, int(cpus) * CHUNKS_PER_CPU)))


def chunks(n_jobs: int, size: int) -> list[list[int]]:
    """The job indices ``0..n_jobs-1`` cut into consecutive chunks of ``size`` (the last may
    be shorter)."""
    if size < 1:
        raise GroklabError(f"a chunk holds at least one job (got {size})")
    return [list(range(start, min(start + size, n_jobs))) for start in range(0, n_jobs, size)]


def run_chunk(packs: Sequence[Sequence[Job]], modules: Sequence[str] = ()) -> Iterator[Outcome]:
    """Import ``modules`` (the extensions registered on the driver), then train ``packs`` one
    after another in one torch thread, yielding each job's :class:`Outcome` in the packs'
    order as its pack finishes. Never raises for a failing run. (The body of one Ray task;
    callable without Ray too.)"""
    import_modules(tuple(modules))
    for pack in packs:
        for outcome in run_pack(pack, threads=1):  # (not `yield from`: Ray drives the generator with send)
            yield outcome


def _one_line(error: BaseException) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"


def _connect(ray, address: Optional[str]) -> bool:
    """Connect to ``address`` (or start a local instance when ``None`` and ``RAY_ADDRESS`` is
    unset) unless this process is connected already; True when this call connected."""
    if ray.is_initialized():
        return False
    local = address is None and not os.environ.get("RAY_ADDRESS")
    try:  # (a local instance without its dashboard: nothing to serve, and a faster start)
        ray.init(address=address, logging_level=logging.WARNING, **({"include_dashboard": False} if local else {}))
    except Exception as e:  # ConnectionError, ValueError for a bad address, ...
        where = f"at {address}" if address else "(local)"
        raise GroklabError(f"could not start or reach a Ray cluster {where}: {_one_line(e)}") from None
    return True


def execute_ray(jobs: Sequence[Job], packs: Sequence[Sequence[int]], finished: Callable[[int, Outcome], Any],
                address: Optional[str] = None, chunk: Optional[int] = None) -> None:
    """Run ``jobs``, grouped into ``packs`` (lists of job indices), as chunked Ray tasks and
    call ``finished(index, outcome)`` for each job as its outcome arrives (in completion order).
    A process already connected to Ray (``ray.init`` called before) uses that connection; else
    ``address`` is the cluster to reach (``"auto"``, ``"ray://host:10001"``, ...) and ``None``
    means ``RAY_ADDRESS`` or else a local instance, started for this call and stopped after it.
    ``chunk`` is the number of packs per task (default: :func:`chunk_size`). A chunk whose
    worker dies marks its unfinished jobs ``failed`` with the error; the rest go on."""
    ray = import_ray()
    if not jobs:
        return
    started = _connect(ray, address)
    try:
        size = chunk or chunk_size(len(packs), ray.cluster_resources().get("CPU", 1))
        modules = extension_modules()
        # Absolute directories: a worker's current directory is not the driver's.
        sent = [dataclasses.replace(job, out=str(Path(job.out).resolve())) for job in jobs]
        # One CPU per task (Ray then sets one OpenMP thread there); no retry: a retried chunk would
        # yield its finished jobs twice, and a restarted sweep resumes what a dead worker left.
        task = ray.remote(num_cpus=1, max_retries=0)(run_chunk)
        pending: dict[Any, list[int]] = {}  # generator -> indices of its jobs not yet reported
        for members in chunks(len(packs), size):
            # the chunk's jobs in the order run_chunk yields them
            pending[task.remote([[sent[i] for i in packs[p]] for p in members], modules)] = \
                [i for p in members for i in packs[p]]
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            generator = ready[0]
            indices = pending[generator]
            try:
                outcome = ray.get(next(generator))
            except StopIteration:
                del pending[generator]
                for i in indices:  # (cannot happen: run_chunk yields once per job)
                    finished(i, Outcome(jobs[i].out, "failed", "the Ray task ended without a result"))
                continue
            except Exception as e:  # the worker died (OOM kill, segfault) or the task could not start
                del pending[generator]
                for i in indices:
                    finished(i, Outcome(jobs[i].out, "failed", f"Ray task failed: {_one_line(e)}"))
                continue
            i = indices.pop(0)
            finished(i, dataclasses.replace(outcome, out=jobs[i].out))  # the caller's own path
            if not indices:
                del pending[generator]
    finally:
        if started:
            ray.shutdown()
