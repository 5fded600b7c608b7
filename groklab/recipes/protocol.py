"""The evidence protocol every recipe follows.

A recipe does not train, measure and judge by hand. It returns a :class:`Design`:

- ``arms``: the configurations it runs (the treatment, and where the claim is comparative,
  what it is compared with), each run once per seed in ``seeds``;
- ``measure(run) -> {quantity: number or None}``: what one run contributes (None means
  "never reached within the run": censored, never "the largest value");
- ``judge(results) -> [Criterion]``: the paper's claim as criteria over the seed samples of
  every arm (effect sizes against the spread across seeds, see :func:`lower`);
- ``control``: the setting in which the paper says the effect is absent, as overrides that
  remove its cause from every arm (:class:`Control`). The same ``judge`` runs on it.

The verdict is *supported* only when every criterion holds for the treatment and the same
criteria do not all hold for the control: a check that also passes where the cause is
absent cannot be evidence for the cause. The framework runs the arms (optionally in
parallel processes), aggregates each quantity over seeds (median, range and each seed's
value) and writes ``verdict.json`` and the figure.

``judge`` is a plain function of :class:`Results`, so tests build results from hand-made
runs (:func:`results_from_runs`) and check that it passes and fails where it should.
"""

from __future__ import annotations

import math
import os
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Optional, Sequence, Union

from groklab.analysis.grokking import median_censored
from groklab.config import Config, parse_override
from groklab.errors import GroklabError

__all__ = [
    "Arm", "Control", "Design", "Criterion", "Sample", "Results", "lower", "higher", "most_seeds",
    "results_from_runs", "median_censored", "run_all", "judge_design", "code_version", "seeds_for",
]

Number = Optional[float]
MAJORITY = 2 / 3  # share of seeds a per-seed property must hold in


# ----------------------------------------------------------------------------- what a recipe declares
@dataclass(frozen=True)
class Arm:
    """One configuration, run once per seed. ``key`` names its run directories
    (``<key>-seed<s>``); ``label`` is how figures and notes name it, in words.

    ``runner``: for the rare arm that :func:`groklab.run` cannot express (fig. 5's labels are
    eigenvectors of the model's own initial kernel): a picklable ``runner(config, out_dir) ->
    Run`` that writes the same files a run directory holds."""

    key: str
    label: str
    config: Config
    runner: Optional[Callable[[Config, Path], Any]] = None


@dataclass(frozen=True)
class Control:
    """The negative control: ``overrides`` applied to every arm remove the cause of the
    effect (for example ``optim.weight_decay=0``), ``why`` quotes or paraphrases the paper on
    why the effect should then be absent. Its runs go to ``control/`` beside the treatment's.
    An override applies to the arms whose config has its key (``task.train_frac`` to the
    modular arms of a recipe that also has image arms); each must apply to some arm.

    ``run_quick=False`` only documents the control at the quick size (it is run at full
    size); the verdict says so. ``arms`` (keys) runs the control on those arms only, where a
    grid is too costly to run twice and the check reads a few of its cells; default: all."""

    overrides: tuple[str, ...]
    why: str
    run_quick: bool = True
    arms: Optional[tuple[str, ...]] = None

    def arms_of(self, arms: Sequence["Arm"]) -> list["Arm"]:
        """The arms the control runs, in the design's order; a key no arm has is an error."""
        unknown = set(self.arms or ()) - {a.key for a in arms}
        if unknown:
            raise GroklabError(f"the control names arms the design does not have: {', '.join(sorted(unknown))}")
        return [a for a in arms if self.arms is None or a.key in self.arms]

    def apply(self, config: Config) -> Config:
        """``config`` with those of the overrides whose keys it has."""
        keys = set(config.dotted_keys())
        return config.override(*(o for o in self.overrides if parse_override(o)[0] in keys))

    def check_applies(self, configs: Sequence[Config]) -> None:
        """Raise :class:`GroklabError` for an override that no arm's config has a key for."""
        keys = set().union(*(c.dotted_keys() for c in configs))
        for assignment in self.overrides:
            if parse_override(assignment)[0] not in keys:
                raise GroklabError(f"control override '{assignment}' sets a key none of the recipe's arms has")


@dataclass(frozen=True)
class Criterion:
    """One test of the claim on one set of results: its name, whether it held, and the
    numbers it was decided on."""

    name: str
    holds: bool
    detail: str

    def __bool__(self) -> bool:  # so ``all(criteria)`` reads naturally
        return bool(self.holds)


@dataclass
class Design:
    """What a recipe runs and how it judges (see the module docstring)."""

    arms: Sequence[Arm]
    seeds: Sequence[int]
    measure: Callable[[Any], dict[str, Number]]
    judge: Callable[["Results"], list[Criterion]]
    control: Optional[Control]
    size: str  # one line: what this size runs (dimensions, steps, seeds), and how it departs from the paper
    falsifier: str  # what outcome would have made the verdict false, in words
    figure: Optional[Callable[["Results", Optional["Results"]], Any]] = None
    notes: str = ""  # settings and departures from the authors' (FORMULAS.md)
    jobs_hint: int = 1  # recipes of many tiny runs may ask for more worker processes by default


# ----------------------------------------------------------------------------- seed samples
@dataclass(frozen=True)
class Sample:
    """One quantity over seeds: ``values[i]`` belongs to ``seeds[i]``; None = censored (never
    reached within the run), NaN = undefined (e.g. a ratio whose denominator never happened)."""

    values: tuple[Number, ...]
    seeds: tuple[int, ...]

    @property
    def median(self) -> float:
        """Median with censored values counted as +inf (so the median may be inf); NaN if any
        value is undefined."""
        if any(v is not None and math.isnan(v) for v in self.values):
            return math.nan
        m = median_censored(self.values)
        return math.inf if m is None else m

    @property
    def low(self) -> float:
        """The smallest value over the seeds (inf when every seed is censored)."""
        return min(math.inf if v is None else v for v in self.values)

    @property
    def high(self) -> float:
        """The largest value over the seeds; inf when any seed is censored (it never got there)."""
        return max(math.inf if v is None else v for v in self.values)

    @property
    def half_range(self) -> float:
        """Half the range over the seeds that reached a value (0 for one seed); the spread an
        effect must exceed."""
        finite = [v for v in self.values if v is not None and math.isfinite(v)]
        return (max(finite) - min(finite)) / 2 if len(finite) > 1 else 0.0

    @property
    def censored(self) -> int:
        """How many seeds never reached a value (None)."""
        return sum(v is None for v in self.values)

    def share(self, predicate: Callable[[float], bool]) -> float:
        """Share of seeds whose value satisfies ``predicate`` (censored values never do)."""
        return sum(v is not None and bool(predicate(v)) for v in self.values) / len(self.values)

    def describe(self, fmt: str = ".3g") -> str:
        """``median M [low, high] over n seeds (s0: v0, ...)``; censored shown as 'never'."""
        def one(v: Number) -> str:
            return "never" if v is None else ("n/a" if math.isnan(v) else format(v, fmt))
        each = ", ".join(f"s{s}: {one(v)}" for s, v in zip(self.seeds, self.values))
        med = self.median
        med_text = "never" if math.isinf(med) else one(med)
        if len(self.values) == 1:
            return f"{med_text} (1 seed)"
        return f"median {med_text} [{one(self.low if math.isfinite(self.low) else None)}, " \
               f"{one(self.high if math.isfinite(self.high) else None)}] ({each})"


@dataclass
class Results:
    """Every arm's runs and seed samples; ``results[arm][quantity]`` is a :class:`Sample`."""

    arms: list[Arm]
    seeds: list[int]
    runs: dict[str, list[Any]]
    samples: dict[str, dict[str, Sample]]

    def __getitem__(self, arm: str) -> dict[str, Sample]:
        return self.samples[arm]

    def label(self, arm: str) -> str:
        """The figure label of the arm keyed ``arm``."""
        return next(a.label for a in self.arms if a.key == arm)

    def flat(self, prefix: str = "") -> dict[str, float]:
        """``{prefix arm.quantity.median|low|high: number}`` for verdict.json's ``measured``."""
        out: dict[str, float] = {}
        for arm, quantities in self.samples.items():
            for q, s in quantities.items():
                for stat in ("median", "low", "high"):
                    out[f"{prefix}{arm}.{q}.{stat}"] = getattr(s, stat)
        return out

    def per_seed(self) -> dict[str, dict[str, list[Number]]]:
        """``{arm: {quantity: [value per seed]}}``, None where a seed was censored."""
        return {arm: {q: list(s.values) for q, s in quantities.items()} for arm, quantities in self.samples.items()}


def results_from_runs(arms: Sequence[Arm], seeds: Sequence[int], runs: Mapping[str, Sequence[Any]],
                      measure: Callable[[Any], dict[str, Number]]) -> Results:
    """Apply ``measure`` to each run (``runs[arm.key][i]`` is seed ``seeds[i]``) and gather the
    seed samples. Tests call this with hand-made runs (anything with ``metrics``, ``summary``
    and ``config``)."""
    samples: dict[str, dict[str, Sample]] = {}
    for arm in arms:
        per_run = [measure(r) for r in runs[arm.key]]
        keys = list(dict.fromkeys(k for m in per_run for k in m))
        samples[arm.key] = {
            k: Sample(tuple(_number(m.get(k)) for m in per_run), tuple(seeds)) for k in keys
        }
    return Results(list(arms), list(seeds), {a.key: list(runs[a.key]) for a in arms}, samples)


def _number(v: Any) -> Number:
    if v is None:
        return None
    if isinstance(v, bool):
        return float(v)
    return float(v)


# ----------------------------------------------------------------------------- criteria helpers
def _compare(treatment: Sample, reference: Sample, name: str, min_rel: float, sign: float, word: str) -> Criterion:
    """Shared by :func:`lower` (sign +1) and :func:`higher` (sign -1): the effect is
    ``sign * (median(reference) - median(treatment))``."""
    t, r = treatment.median, reference.median
    spread = max(treatment.half_range, reference.half_range)
    if math.isnan(t) or math.isnan(r):
        return Criterion(name, False, f"undefined: {treatment.describe()} vs {reference.describe()}")
    effect = 0.0 if (math.isinf(r) and math.isinf(t)) else sign * (r - t)
    rel_ok = (math.isinf(effect) and effect > 0) or (math.isfinite(r) and effect >= min_rel * abs(r) and effect > 0)
    inf = math.inf
    paired = sum(sign * ((b if b is not None else inf) - (a if a is not None else inf)) > 0
                 if not (a is None and b is None) else False
                 for a, b in zip(treatment.values, reference.values))
    pairs_ok = paired >= MAJORITY * len(treatment.values) - 1e-9
    holds = effect > spread and rel_ok and pairs_ok
    eff_text = "inf" if math.isinf(effect) else f"{effect:.3g}"
    detail = (f"{treatment.describe()} vs {reference.describe()}: effect {eff_text} (needs > seed spread "
              f"{spread:.3g} and >= {min_rel:g} x reference), {word} in {paired} of {len(treatment.values)} seeds")
    return Criterion(name, bool(holds), detail)


def lower(treatment: Sample, reference: Sample, name: str, min_rel: float = 0.1) -> Criterion:
    """``treatment`` is lower than ``reference`` (fewer steps, smaller loss) by an effect that
    counts: the difference of medians is (a) larger than the spread across seeds (the larger
    half-range of the two arms), (b) at least ``min_rel`` of the reference's median, and (c)
    the treatment is lower in at least 2/3 of the seeds paired by index. Censored values
    (never reached) count as later than every reached one: an arm that never gets there is
    not "the slowest" but beyond all, and the effect is infinite only when the other arm's
    median is reached."""
    return _compare(treatment, reference, name, min_rel, +1.0, "lower")


def higher(treatment: Sample, reference: Sample, name: str, min_rel: float = 0.1) -> Criterion:
    """Mirror of :func:`lower` for quantities where more is the effect (accuracy, a ratio)."""
    return _compare(treatment, reference, name, min_rel, -1.0, "higher")


def most_seeds(sample: Sample, predicate: Callable[[float], bool], name: str, what: str) -> Criterion:
    """A per-seed property holds in at least 2/3 of the seeds; ``what`` says it in words."""
    share = sample.share(predicate)
    n = len(sample.values)
    return Criterion(name, share >= MAJORITY - 1e-9, f"{what}: {round(share * n)} of {n} seeds ({sample.describe()})")


# ----------------------------------------------------------------------------- running a design
def run_all(jobs: Sequence[tuple[Config, Path, Optional[Callable]]], workers: int = 1, progress: bool = False,
            description: str = "runs", reuse: bool = False, pack: int = 1) -> tuple[list[Any], int]:
    """Train every ``(config, out, runner)``; return the loaded runs in order and how many of
    the distinct runs were read back (``reuse``) rather than trained. Identical
    jobs run once (a control that changes nothing for some arm costs nothing). With
    ``workers > 1`` runs go to that many processes, one torch thread each. With ``reuse``, a
    directory that already holds a finished run of the same config is read, not retrained
    (a killed reproduction restarts where it stopped; a verdict can be judged again by newer
    code). ``pack``: up to that many compatible runs train as one ensemble
    (:func:`groklab.sweeps.executor.pack_jobs`). A run that fails raises :class:`GroklabError`
    naming it: a verdict needs every run."""
    from groklab.experiment import load
    from groklab.sweeps import point_state
    from groklab.sweeps.executor import Job, execute

    first: dict[str, Job] = {}
    keys = []
    for config, out, runner in jobs:
        key = config.to_json() + "|" + getattr(runner, "__qualname__", "")
        if key not in first:
            state = point_state(Path(out), config) if reuse else "fresh"
            first[key] = Job(config.to_json(), str(out), resume=state == "resumable", runner=runner)
            if state == "complete":
                first[key] = Job("", str(out))  # nothing to do: read it back below
        keys.append(key)
    todo = [job for job in first.values() if job.config_json]
    outcomes = execute(todo, workers=workers, progress=progress, description=description, pack=pack)
    failed = [o for o in outcomes if o.status == "failed"]
    if failed:
        raise GroklabError(f"{len(failed)} run(s) failed, first {failed[0].out}: {failed[0].error}")
    loaded = {key: load(job.out) for key, job in first.items()}
    return [loaded[key] for key in keys], len(first) - len(todo)


def judge_design(design: Design, results: Results, control: Optional[Results]) -> dict[str, Any]:
    """The verdict's logic: every criterion holds for the treatment, and (when the control
    ran) not every criterion holds for the control."""
    treated = design.judge(results)
    if not treated:
        raise GroklabError("a recipe's judge returned no criteria")
    verdict: dict[str, Any] = {
        "treatment": {"holds": all(treated), "criteria": [_criterion_json(c) for c in treated]},
    }
    supported = all(treated)
    if design.control is not None:
        entry: dict[str, Any] = {"overrides": list(design.control.overrides), "why": design.control.why}
        if control is not None:
            controlled = design.judge(control)
            entry.update(ran=True, holds=all(controlled), criteria=[_criterion_json(c) for c in controlled])
            supported = supported and not all(controlled)
        else:
            entry.update(ran=False, holds=None, criteria=[])
        verdict["control"] = entry
    verdict["supported"] = bool(supported)
    return verdict


def _criterion_json(c: Criterion) -> dict[str, Any]:
    return {"name": c.name, "holds": bool(c.holds), "detail": c.detail}


def code_version() -> str:
    """The commit that made a verdict: ``GROKLAB_COMMIT`` if set, else the checkout's commit,
    followed by ``+dirty:`` and the package files that differed from it (uncommitted), so a
    reader can tell whether the code that judged is the code on that commit."""
    if os.environ.get("GROKLAB_COMMIT"):
        return os.environ["GROKLAB_COMMIT"]
    here = Path(__file__).resolve().parents[1]
    try:
        def git(*args: str) -> str:
            return subprocess.run(["git", *args], cwd=here, capture_output=True, text=True, timeout=10).stdout.rstrip()

        commit = git("rev-parse", "--short=12", "HEAD").strip()
        dirty = git("status", "--porcelain", "--untracked-files=no", "--", ".").splitlines()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    if not commit:
        return "unknown"
    files = sorted(line[3:] for line in dirty)
    return commit + (f"+dirty:{','.join(files)}" if files else "")


def seeds_for(quick: bool, quick_seeds: Union[int, Sequence[int]], full_seeds: Union[int, Sequence[int]]) -> list[int]:
    """``range(n)`` or the given list, by size."""
    chosen = quick_seeds if quick else full_seeds
    return list(range(chosen)) if isinstance(chosen, int) else list(chosen)
