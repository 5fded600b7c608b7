"""Train many configs: in this process, in a pool of worker processes (one torch thread
each), or on a Ray cluster in chunks (:mod:`groklab.sweeps.ray_executor`, imported only
then), with one progress bar. A point that fails is recorded with its error, not raised.

With ``pack=K`` the fresh jobs whose configs differ only in what an ensemble batches (seed,
learning rate, weight decay, init scale, alpha, a model's ``per_member`` fields:
:mod:`groklab.training.ensemble`) train up to K at a time, as many as fit
:func:`pack_memory_budget`, as one batched model; the unit of work is then a *pack* (a list
of jobs), and a lone job is a pack of one."""

from __future__ import annotations

import math
import multiprocessing
from concurrent.futures import ProcessPoolExecutor, as_completed
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterable, Optional, Sequence

from groklab.errors import GroklabError

__all__ = ["Job", "Outcome", "execute", "check_executor", "extension_modules", "import_modules", "run_job", "run_pack",
           "pack_jobs", "pack_memory_budget", "EXECUTORS"]

EXECUTORS = ("local", "ray")


def check_executor(executor: str, chunk: Optional[int] = None, pack: int = 1) -> None:
    """A one-line :class:`GroklabError` for an unknown executor, a chunk below one job, a pack
    below one run, or the Ray executor without Ray installed, before anything runs or is written."""
    if executor not in EXECUTORS:
        raise GroklabError(f"unknown executor {executor!r}; choose one of {', '.join(EXECUTORS)}")
    if chunk is not None and chunk < 1:
        raise GroklabError(f"a chunk holds at least one job (got {chunk})")
    if pack < 1:
        raise GroklabError(f"a pack holds at least one run (got --pack {pack})")
    if executor == "ray":
        from groklab.sweeps.ray_executor import import_ray

        import_ray()


def extension_modules() -> tuple[str, ...]:
    """The modules outside groklab that registered a task, model, intervention or metric in
    this process (``__main__`` aside: a spawned worker re-runs the main script itself)."""
    from groklab.config import INTERVENTION_BLOCKS, ModelConfig, TaskConfig
    from groklab.metrics.registry import METRICS

    registered = [*TaskConfig.variants.values(), *ModelConfig.variants.values(), *INTERVENTION_BLOCKS.values(),
                  *METRICS.values()]
    names = {getattr(thing, "__module__", "") for thing in registered}
    return tuple(sorted(n for n in names if n and n.split(".")[0] != "groklab" and n != "__main__"))


def import_modules(names: tuple[str, ...]) -> None:
    """Import the modules named (a worker does so before its first job, see
    :func:`extension_modules`)."""
    import importlib

    for name in names:  # (importing any of them imports groklab's own registrations first)
        importlib.import_module(name)


@dataclass(frozen=True)
class Job:
    """One run to make: its config (as JSON), its directory, whether to resume what is there,
    and an optional picklable ``runner(config, out) -> Run`` instead of :func:`groklab.run`."""

    config_json: str
    out: str
    resume: bool = False
    runner: Optional[Callable] = None


@dataclass(frozen=True)
class Outcome:
    """What became of a job: ``done``, ``diverged`` or ``failed`` (with the error's one line)."""

    out: str
    status: str
    error: Optional[str] = None


def _failed(error: BaseException) -> str:
    return f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"


@contextmanager
def _torch_threads(threads: int):
    """Run the block with ``threads`` torch threads, then restore the previous number."""
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def run_job(job: Job, threads: int = 1) -> Outcome:
    """Train one job here; never raises for a failing run (the outcome says why)."""
    from groklab import experiment
    from groklab.config import Config

    try:
        with _torch_threads(threads):
            config = Config.from_json(job.config_json)
            if job.runner is not None:
                run = job.runner(config, Path(job.out))
            elif job.resume:
                run = experiment.resume(job.out, progress=False)
            else:
                run = experiment.run(config, out=job.out, overwrite=True, progress=False)
        return Outcome(job.out, "diverged" if run.summary.get("diverged") else "done")
    except Exception as e:  # a sweep records the failure of one point and goes on
        return Outcome(job.out, "failed", _failed(e))


PACK_MEMORY_ENV = "GROKLAB_PACK_MEMORY"  # GiB a pack may use, instead of half the free memory


def pack_memory_budget(device: str, workers: int = 1) -> int:
    """Bytes one pack may use on ``device`` (a config's ``train.device``) when ``workers`` packs
    train at once: ``$GROKLAB_PACK_MEMORY`` GiB if set, else half the memory free now (the
    GPU's for a CUDA device, the machine's otherwise), shared among the workers."""
    import os

    from groklab.training.loop import resolve_device

    if os.environ.get(PACK_MEMORY_ENV):
        try:
            return int(float(os.environ[PACK_MEMORY_ENV]) * 2**30)
        except ValueError:
            raise GroklabError(f"${PACK_MEMORY_ENV} is GiB per pack, a number (got {os.environ[PACK_MEMORY_ENV]!r})")
    target = resolve_device(device)
    if target.type == "cuda":
        import torch

        free = torch.cuda.mem_get_info(target)[0]
    else:
        free = os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    return free // 2 // max(1, workers)


def pack_jobs(jobs: Sequence[Job], size: int, workers: int = 1) -> list[list[int]]:
    """The indices of ``jobs`` grouped into packs: fresh jobs (not resumed, no custom runner)
    whose configs can train as one ensemble (same :func:`~groklab.training.ensemble.ensemble_key`,
    nothing unbatched) go together, in their order, up to ``size`` per pack, as many as fit in
    :func:`pack_memory_budget` (estimated by :func:`~groklab.training.ensemble.member_bytes`),
    and no more than an even share of their group per worker, so that ``workers`` processes all
    get work; every other job is a pack of one. Packs come in the order of their first job."""
    from groklab.config import Config
    from groklab.training.ensemble import ensemble_key, member_bytes, why_not_batched

    keys: list[Optional[str]] = []  # each job's ensemble key, None = a pack of its own
    groups: dict[str, tuple[Config, list[int]]] = {}  # key -> (its first config, its jobs)
    for i, job in enumerate(jobs):
        config = None if job.resume or job.runner is not None or size <= 1 else Config.from_json(job.config_json)
        key = None if config is None or why_not_batched(config) else ensemble_key(config)
        keys.append(key)
        if key is not None:
            groups.setdefault(key, (config, []))[1].append(i)
    caps = {}
    for key, (config, members) in groups.items():
        budget = pack_memory_budget(config.train.device, workers)  # a bad $GROKLAB_PACK_MEMORY raises here
        try:
            fits = budget // max(1, member_bytes(config))
        except GroklabError:
            fits = 1  # the config cannot be built (missing data, ...): each point fails on its own, recorded
        caps[key] = max(1, min(size, fits, math.ceil(len(members) / max(1, workers))))
    packs: list[list[int]] = []
    open_packs: dict[str, list[int]] = {}
    for i, key in enumerate(keys):
        if key is None:
            packs.append([i])
            continue
        if key not in open_packs or len(open_packs[key]) >= caps[key]:
            open_packs[key] = []
            packs.append(open_packs[key])
        open_packs[key].append(i)
    return packs


def run_pack(jobs: Sequence[Job], threads: int = 1) -> list[Outcome]:
    """Train ``jobs`` here, a lone job as :func:`run_job` does and several as one ensemble
    (:func:`groklab.experiment.run_ensemble`); one outcome per job, never raises (a pack that
    fails marks each of its jobs failed with the error)."""
    if len(jobs) == 1:
        return [run_job(jobs[0], threads)]
    from groklab import experiment
    from groklab.config import Config

    try:
        with _torch_threads(threads):
            configs = [Config.from_json(job.config_json) for job in jobs]
            runs = experiment.run_ensemble(configs, [job.out for job in jobs], overwrite=True, progress=False)
        return [Outcome(job.out, "diverged" if run.summary.get("diverged") else "done") for job, run in zip(jobs, runs)]
    except Exception as e:  # a sweep records the failure and goes on
        return [Outcome(job.out, "failed", _failed(e)) for job in jobs]


def execute(jobs: Iterable[Job], workers: int = 1, progress: bool = False, description: str = "runs",
            on_outcome: Optional[Callable[[Outcome], Any]] = None, executor: str = "local",
            address: Optional[str] = None, chunk: Optional[int] = None, pack: int = 1) -> list[Outcome]:
    """Run ``jobs`` and return their outcomes in the jobs' order; ``on_outcome`` is called as
    each one finishes. ``executor="local"``: in order here when ``workers == 1``, else in a
    pool of that many processes. ``executor="ray"``: as Ray tasks of ``chunk`` packs each on the
    cluster at ``address`` (see :func:`groklab.sweeps.ray_executor.execute_ray`; ``workers``
    does not apply, the cluster's CPUs set the parallelism). Needs ``groklab[ray]``.
    ``pack``: train up to that many compatible fresh jobs as one ensemble, as many as fit the
    memory budget (:func:`pack_jobs`)."""
    check_executor(executor, chunk, pack)  # before the progress bar: a one-line error, nothing else
    jobs = list(jobs)
    packs = pack_jobs(jobs, pack, workers)
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=description, unit="run")
    outcomes: dict[int, Outcome] = {}

    def finished(i: int, outcome: Outcome) -> None:
        outcomes[i] = outcome
        if on_outcome:
            on_outcome(outcome)
        if bar:
            bar.set_postfix_str(f"{sum(o.status != 'failed' for o in outcomes.values())} ok, "
                                f"{sum(o.status == 'failed' for o in outcomes.values())} failed", refresh=False)
            bar.update()

    try:
        if executor == "ray":
            from groklab.sweeps.ray_executor import execute_ray

            execute_ray(jobs, packs, finished, address=address, chunk=chunk)
        elif workers <= 1 or len(packs) <= 1:
            for indices in packs:
                for i, outcome in zip(indices, run_pack([jobs[i] for i in indices])):
                    finished(i, outcome)
        else:
            context = multiprocessing.get_context("spawn")  # no fork of a process holding torch threads
            # A spawned worker starts bare: it imports the modules that registered extensions here,
            # so configs naming their tasks, models, metrics or interventions validate there too.
            with ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=import_modules,
                                     initargs=(extension_modules(),)) as pool:
                futures = {pool.submit(run_pack, [jobs[i] for i in indices]): indices for indices in packs}
                for future in as_completed(futures):
                    for i, outcome in zip(futures[future], future.result()):
                        finished(i, outcome)
    finally:
        if bar:
            bar.close()
    return [outcomes[i] for i in range(len(jobs))]
