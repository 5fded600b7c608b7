"""Frozen, validated experiment configs with JSON round-trip and dotted overrides.

A :class:`Config` is the whole recipe of one run: ``config.json`` in a run directory holds
its resolved form and is enough to rerun the experiment exactly. Keys are dotted paths
(``optim.lr``, ``model.alpha``, ...) that outside scripts rely on; see ``../shared/DESIGN.md``.

Validation happens when a config is built, so a bad value fails before any training starts,
with a :class:`~groklab.errors.GroklabError` whose message names the key and what is allowed.
"""

from __future__ import annotations

import json
from typing import Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from groklab.errors import GroklabError

__all__ = [
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "PerturbConfig",
    "MIConfig",
    "AbelianConfig",
    "BarlowConfig",
    "GrokfastConfig",
    "InterventionsConfig",
    "LinearizedConfig",
    "Config",
    "apply_overrides",
    "parse_override",
    "config_from_dict",
]


class _Frozen(BaseModel):
    # extra="forbid" turns a typo'd key into an error instead of a silently ignored setting.
    # allow_inf_nan=False: optim.lr=1e400 parses as inf in JSON and must be refused, not trained with.
    model_config = ConfigDict(frozen=True, extra="forbid", validate_default=True, allow_inf_nan=False)


class TaskConfig(_Frozen):
    """The data. Each field says which task reads it.

    ``modular``: ``op`` on residues mod ``p``; ``permutation``: composition in S_n (a
    non-abelian control); both split their full table by ``train_frac``. ``polynomial``:
    paper 001's toy-model regression in ``d`` dimensions; ``images``: digits or MNIST;
    ``teacher``: regression on a fixed random teacher MLP; these draw ``n_train``/``n_test``.
    """

    name: Literal["modular", "permutation", "polynomial", "images", "teacher"] = "modular"
    # 3000^2 = 9M pairs is already ~100x the largest modulus in the papers; beyond it the table does not fit.
    p: int = Field(97, ge=2, le=3000, description="modulus for the modular task")
    op: str = Field("x+y", description="operation of the modular task, e.g. 'x+y', 'x/y'")
    n: int = Field(4, ge=2, le=6, description="degree of the symmetric group S_n")
    train_frac: float = Field(0.3, description="fraction of all pairs used for training")
    # --- polynomial (paper 001's toy model): x ~ N(0, I/d), beta_k ~ N(0, I_d)
    d: int = Field(100, ge=1, description="polynomial task: input dimension D")
    n_train: int = Field(
        550, ge=1, description="polynomial task: training points P; images: seeded subset of the training "
        "images (Omnigrok: 1000); teacher: Gaussian training inputs (Omnigrok: 100)"
    )
    n_test: int = Field(
        1000, ge=1, description="polynomial task: fresh test points; images: seeded subset of the test images "
        "(MNIST's t10k has 10000; digits has 1797 - n_train left); teacher: Gaussian test inputs (Omnigrok: 100)"
    )
    target: Literal["quadratic", "hermite"] = Field(
        "quadratic",
        description="polynomial task: 'quadratic' y = 0.5 sum_k (beta_k . x)^2 over n_directions; "
        "'hermite' y = He_degree(z)/sqrt(degree!), z the unit-variance projection on beta",
    )
    degree: int = Field(2, ge=0, le=12, description="polynomial task: Hermite degree (target='hermite')")
    n_directions: int = Field(1, ge=1, description="polynomial task: directions of a multi-index quadratic")
    # --- images (groklab.tasks.images): MNIST IDX files or scikit-learn's bundled 8x8 digits
    dataset: Literal["digits", "mnist"] = Field(
        "digits", description="images task: 'digits' (scikit-learn's bundled 8x8 digits, no download) or 'mnist' "
        "(the four IDX files in task.path)"
    )
    path: Optional[str] = Field(None, description="images task: directory of the MNIST IDX files (raw or .gz)")

    @field_validator("train_frac")
    @classmethod
    def _frac_in_open_interval(cls, v: float) -> float:
        if not 0.0 < v < 1.0:
            raise ValueError(f"must lie strictly between 0 and 1, got {v}")
        return v

    @model_validator(mode="after")
    def _mnist_has_a_path(self) -> "TaskConfig":
        if self.name == "images" and self.dataset == "mnist" and not self.path:
            raise ValueError(
                "task.dataset='mnist' needs task.path, the directory holding the MNIST IDX files "
                "(groklab never downloads); or use task.dataset='digits'"
            )
        return self

    @model_validator(mode="after")
    def _operation_is_defined(self) -> "TaskConfig":
        if self.name == "modular":
            # Imported here: tasks depend on config, not the other way round.
            from groklab.tasks.modular import check_operation

            check_operation(self.op, self.p)
        if self.name == "polynomial" and self.target == "hermite" and self.n_directions != 1:
            raise ValueError("task.target='hermite' is single-index; set task.n_directions=1")
        return self


class ModelConfig(_Frozen):
    """The network and its laziness.

    ``mlp``: two-layer MLP on concatenated one-hot operands. ``transformer``: decoder-only
    transformer on the tokens ``a op b =`` (or ``a b =`` with ``op_token=false``).
    Laziness (paper 001): the output is ``alpha * (f(theta) - f(theta_0))`` when ``centre``
    is on, and the learning rate is divided by ``alpha**2`` (``optim.alpha_lr_scaling``).
    """

    name: Literal["mlp", "transformer", "committee"] = "mlp"
    # committee (paper 001's toy model, polynomial task only): f = alpha/N sum_i v_i phi(w_i . x),
    # phi(h) = h + eps/2 h^2, N = width, w_i ~ N(0, I); readouts v_i = 1, trained iff train_readout
    # --- MLP
    width: int = Field(256, ge=1, le=1_000_000, description="hidden width of the MLP")
    depth: int = Field(
        1, ge=1, description="MLP hidden layers: 1 = the two-layer W_in/W_out net; 2 = e.g. Omnigrok's "
        "784-200-200-10 (extra layers W_mid.0, ...)"
    )
    activation: Literal["relu", "gelu", "tanh", "quadratic", "poly"] = "relu"
    eps: float = Field(0.5, description="poly activation h + eps/2 h^2")
    bias: bool = True
    train_readout: bool = True
    parametrization: Literal["standard", "ntk", "mean_field"] = Field(
        "standard",
        description="standard: PyTorch default init; ntk / mean_field: N(0,1) weights, input / sqrt(d_in), "
        "output / sqrt(width) or / width",
    )
    # --- transformer
    d_model: int = Field(128, ge=1)
    n_heads: int = Field(4, ge=1)
    d_mlp: int = Field(512, ge=1)
    n_layers: int = Field(1, ge=1)
    layernorm: bool = False
    op_token: bool = True
    # --- laziness and scales
    init_scale: float = Field(1.0, gt=0, description="multiplies every initial weight")
    he_init: bool = Field(
        False, description="MLP with parametrization ntk / mean_field: weights N(0, init_scale^2 * 2 / fan_in) "
        "instead of N(0, init_scale^2) (paper 001's MNIST network)"
    )
    alpha: float = Field(1.0, gt=0, description="output scale (laziness)")
    centre: Optional[bool] = Field(None, description="subtract the output at init; null = alpha != 1")
    init_interp: float = Field(
        0.0, ge=0, le=1, description="committee on a quadratic polynomial task: initial W = (1 - t) W_random + "
        "t W_star, W_star the analytic solution (M = T / (alpha eps), wbar = 0; paper 001 app. 8.4.2); 0 = random",
    )

    @property
    def centred(self) -> bool:
        """Whether the output at init is subtracted (``centre``, or by default ``alpha != 1``)."""
        return self.alpha != 1.0 if self.centre is None else self.centre

    @model_validator(mode="after")
    def _he_init_has_unit_weights(self) -> "ModelConfig":
        if self.he_init and (self.name != "mlp" or self.parametrization == "standard"):
            raise ValueError("model.he_init scales N(0,1) weights by sqrt(2/fan_in): it needs model.name='mlp' with "
                             "model.parametrization='ntk' or 'mean_field'")
        return self

    @model_validator(mode="after")
    def _heads_divide_width(self) -> "ModelConfig":
        if self.name == "transformer" and self.d_model % self.n_heads:
            raise ValueError(f"model.d_model ({self.d_model}) must be divisible by model.n_heads ({self.n_heads})")
        return self


class OptimConfig(_Frozen):
    """Optimiser. ``gd`` is plain full-batch gradient descent; ``adamw`` decouples weight decay,
    ``sgd`` and ``adam`` add it to the gradient (L2)."""

    name: Literal["gd", "sgd", "adam", "adamw"] = "adamw"
    lr: float = Field(1e-3, gt=0)
    weight_decay: float = Field(0.0, ge=0)
    momentum: float = Field(0.0, ge=0, lt=1)
    betas: tuple[float, float] = (0.9, 0.98)

    @field_validator("betas")
    @classmethod
    def _betas_are_decay_rates(cls, v: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in v):
            raise ValueError(f"Adam's betas are decay rates in [0, 1), got {list(v)}")
        return v
    warmup_steps: int = Field(0, ge=0, description="linear learning-rate warm-up")
    alpha_lr_scaling: bool = Field(True, description="divide lr by model.alpha**2")

    @model_validator(mode="after")
    def _gd_has_no_momentum(self) -> "OptimConfig":
        if self.name == "gd" and self.momentum:
            raise ValueError("optim.name='gd' is plain gradient descent; use optim.name='sgd' for momentum")
        return self


class TrainConfig(_Frozen):
    """The loop: how long, on what batches, with which loss, how often to evaluate and save."""

    steps: int = Field(10_000, ge=0)
    batch_size: Optional[int] = Field(None, ge=1, description="null = full batch")
    loss: Literal["cross_entropy", "mse"] = "cross_entropy"
    label_scale: float = Field(1.0, gt=0, description="one-hot targets are multiplied by this (mse)")
    eval_every: int = Field(100, ge=1)
    checkpoint_every: Optional[int] = Field(1000, ge=1, description="null = only at the end")
    stop_at_test_acc: Optional[float] = Field(None, gt=0, le=1)
    stop_patience: int = Field(1, ge=1, description="evaluations test acc must hold the target")
    device: str = Field("auto", description="auto, cpu, cuda, cuda:0, ...")
    on_divergence: Literal["stop", "continue"] = Field(
        "stop", description="when the training loss becomes NaN or infinite at an evaluation: stop there (the run "
        "is a result, marked diverged) or go on to train.steps"
    )


class EvalConfig(_Frozen):
    """What counts as fitting and as generalising, and which extra metrics to record."""

    train_acc_threshold: float = Field(0.99, gt=0, le=1)
    test_acc_threshold: float = Field(0.95, gt=0, le=1)
    loss_threshold: float = Field(0.1, gt=0, description="relative to the loss at step 0")
    metrics: tuple[str, ...] = Field((), description="scheduled metrics, by registered name")
    metrics_every: Optional[int] = Field(
        None, ge=1, description="every metric every N steps; null = by cost: cheap ones at every evaluation, "
        "expensive ones log-spaced (see groklab.metrics.registry)"
    )
    metrics_per_decade: int = Field(
        10, ge=1, description="expensive metrics' evaluations per decade of steps when metrics_every is null"
    )


class PerturbConfig(_Frozen):
    """Perturbed training (paper 000, section 3.2): the dense one-hot input of every training
    step gets Gaussian noise of standard deviation ``sigma = max(lambda1 * (1 - train_acc),
    lambda2)`` per coordinate, where ``train_acc`` is the training accuracy of the latest
    evaluation (every ``train.eval_every`` steps, on the clean training set). The paper writes
    the noise as N(0, sigma I); we read sigma as the standard deviation. On when either lambda
    is positive; MLP only (the transformer reads token ids, which cannot be perturbed)."""

    lambda1: float = Field(0.0, ge=0, description="noise scale times the training error")
    lambda2: float = Field(0.0, ge=0, description="noise floor")

    @property
    def on(self) -> bool:
        return self.lambda1 > 0 or self.lambda2 > 0


class MIConfig(_Frozen):
    """MI-regularised training (paper 000, section 4.3): the loss gets ``- weight * I(R_x; R_f)``,
    the matrix mutual information between the Gram matrices of the (one-hot, possibly perturbed)
    inputs and of the logits of the batch, so minimising the loss maximises the information."""

    weight: float = Field(0.0, ge=0, description="0 = off")
    order: float = Field(1.0, gt=0, description="matrix Renyi order (1 = von Neumann)")
    max_samples: Optional[int] = Field(
        512, ge=2, description="at most this many rows of each batch, drawn afresh each step; null = all"
    )

    @property
    def on(self) -> bool:
        return self.weight > 0


class AbelianConfig(_Frozen):
    """Commutativity loss (paper 000, Fig. 10): ``weight`` times the symmetrised KL divergence
    between the predictions for ``(a, b)`` and ``(b, a)`` on every training batch."""

    weight: float = Field(0.0, ge=0, description="0 = off")

    @property
    def on(self) -> bool:
        return self.weight > 0


class BarlowConfig(_Frozen):
    """Barlow Twins regulariser (Zbontar et al. 2021; paper 000, Fig. 14) between the activations
    of ``layer`` on two views of the batch: the batch itself and a copy with Gaussian input noise
    of standard deviation ``sigma`` (``view='noise'``, MLP only) or with the operands swapped
    (``view='swap'``, any model). The loss is ``weight`` times ``sum_i (1 - C_ii)^2 +
    off_diagonal * sum_{i != j} C_ij^2``, divided by the width ``d``, for the cross-correlation
    ``C`` (d x d) of the batch-standardised activations."""

    weight: float = Field(0.0, ge=0, description="0 = off")
    layer: Optional[str] = Field(None, description="cache key; null = 'hidden' (MLP) or 'resid_final' (transformer)")
    view: Literal["noise", "swap"] = "noise"
    sigma: float = Field(0.1, ge=0, description="input noise of the second view (view='noise')")
    off_diagonal: float = Field(5e-3, ge=0, description="weight of the redundancy-reduction term")

    @property
    def on(self) -> bool:
        return self.weight > 0


class GrokfastConfig(_Frozen):
    """Grokfast gradient filters (Lee et al. 2024), applied after backward, before the update:
    ``grad <- grad + lamb * filtered(grad)``. ``ema``: ``filtered = alpha * filtered +
    (1 - alpha) * grad`` (started at the first gradient); ``ma``: the mean of the last ``window``
    gradients, applied only once the window is full when ``warmup``. Lee et al. use
    ``alpha=0.98, lamb=2`` (EMA) and ``window=100, lamb=5`` (MA)."""

    filter: Literal["none", "ema", "ma"] = "none"
    lamb: float = Field(2.0, ge=0)
    alpha: float = Field(0.98, ge=0, lt=1)
    window: int = Field(100, ge=1)
    warmup: bool = True

    @property
    def on(self) -> bool:
        return self.filter != "none"


class InterventionsConfig(_Frozen):
    """Interventions on training (see :mod:`groklab.interventions`); all off by default and
    freely combined."""

    perturb: PerturbConfig = PerturbConfig()
    mi: MIConfig = MIConfig()
    abelian: AbelianConfig = AbelianConfig()
    barlow: BarlowConfig = BarlowConfig()
    grokfast: GrokfastConfig = GrokfastConfig()


class LinearizedConfig(_Frozen):
    """A linearised copy of the network, ``f(theta_0) + J(theta_0) (theta - theta_0)``, trained side
    by side from the same initialisation on the same batches with the same optimiser settings
    (paper 001, section 4.1); each evaluation adds its losses, accuracies and distance to the
    network as ``lin.*`` columns (:mod:`groklab.interventions.linearized`)."""

    enabled: bool = False

    @property
    def on(self) -> bool:
        return self.enabled


class Config(_Frozen):
    """One experiment. Build with keyword arguments, :func:`config_from_dict`, a preset
    (:func:`groklab.presets.load_preset`) and :func:`apply_overrides`."""

    # The name becomes a folder under runs/: letters, digits, '.', '_' and '-', so it cannot leave it.
    name: str = Field("custom", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    seed: int = Field(0, ge=0)
    task: TaskConfig = TaskConfig()
    model: ModelConfig = ModelConfig()
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    interventions: InterventionsConfig = InterventionsConfig()
    linearized: LinearizedConfig = LinearizedConfig()

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        if self.optim.name == "gd" and self.train.batch_size is not None:
            raise ValueError("optim.name='gd' is full-batch; set train.batch_size=null or use optim.name='sgd'")
        return self

    @model_validator(mode="after")
    def _toy_model_fits_the_task(self) -> "Config":
        poly, committee = self.task.name == "polynomial", self.model.name == "committee"
        if committee and not poly:
            raise ValueError("model.name='committee' is the toy model of task.name='polynomial' (scalar regression)")
        if poly and not committee:
            raise ValueError("task.name='polynomial' has dense regression inputs; use model.name='committee'")
        if poly and self.train.loss != "mse":
            raise ValueError("task.name='polynomial' is regression; set train.loss='mse'")
        if self.model.init_interp > 0:
            if not committee or self.task.target != "quadratic":
                raise ValueError("model.init_interp interpolates toward the toy model's analytic solution: it needs "
                                 "model.name='committee' and task.target='quadratic'")
            if self.model.eps <= 0:
                raise ValueError("model.init_interp needs model.eps > 0 (the solution is M = T / (alpha eps))")
            if self.model.width < 2 * self.task.n_directions:
                raise ValueError("model.init_interp needs model.width >= 2 * task.n_directions (a +/- pair of "
                                 "neurons per target direction)")
        return self

    @model_validator(mode="after")
    def _interventions_fit_the_model(self) -> "Config":
        iv = self.interventions
        if self.model.name != "mlp":
            if iv.perturb.on:
                raise ValueError(
                    "interventions.perturb adds noise to dense one-hot inputs, which only model.name='mlp' takes "
                    "(the transformer reads token ids)"
                )
            if iv.barlow.on and iv.barlow.view == "noise":
                raise ValueError(
                    "interventions.barlow.view='noise' perturbs dense one-hot inputs, which only model.name='mlp' "
                    "takes; use interventions.barlow.view='swap' with the transformer"
                )
        return self

    @model_validator(mode="after")
    def _dense_tasks_fit_the_model(self) -> "Config":
        # images and teacher give dense float inputs, which only the MLP reads.
        if self.task.name in ("images", "teacher") and self.model.name != "mlp":
            raise ValueError(
                f"task.name='{self.task.name}' gives dense float inputs, which only model.name='mlp' takes "
                f"(got model.name='{self.model.name}')"
            )
        if self.task.name == "teacher" and self.train.loss != "mse":
            raise ValueError("task.name='teacher' is regression; set train.loss='mse'")
        return self

    @property
    def lr(self) -> float:
        """The learning rate the optimiser really uses (after alpha scaling)."""
        scale = self.model.alpha**2 if self.optim.alpha_lr_scaling else 1.0
        return self.optim.lr / scale

    def to_json(self) -> str:
        """The whole resolved config as indented JSON."""
        return self.model_dump_json(indent=2)

    @classmethod
    def from_json(cls, text: str) -> "Config":
        """Inverse of :meth:`to_json`; raises :class:`GroklabError` on a bad document."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise GroklabError(f"config is not valid JSON: {e}") from None
        return config_from_dict(data)

    def override(self, *assignments: str) -> "Config":
        """Return a copy with ``key=value`` assignments applied (see :func:`apply_overrides`)."""
        return apply_overrides(self, assignments)


def _one_line(err: ValidationError) -> str:
    first = err.errors()[0]
    loc = [str(part) for part in first["loc"]]
    msg = first["msg"].removeprefix("Value error, ")
    given = first.get("input")
    if first["type"] == "extra_forbidden":
        return f"unknown config key '{'.'.join(loc)}'"
    if first["type"] in ("missing", "too_short", "too_long") and loc and loc[-1].isdigit():
        key = ".".join(loc[:-1])  # a tuple of the wrong length: name the key, not its element
        return f"{key}: needs exactly {int(loc[-1]) + 1 if first['type'] == 'missing' else 'the listed number of'} values"
    key = ".".join(loc) or "config"
    if first["type"] == "string_pattern_mismatch" and key == "name":
        return f"name={given!r}: use letters, digits, '.', '_' and '-' (it names a folder under runs/)"
    if first["type"] == "finite_number":
        return f"{key}: must be a finite number"
    if msg.startswith(key + ".") or msg.startswith(key + "="):
        return msg  # a model-level check that already names its keys
    suffix = "" if isinstance(given, dict) or given is None or "got " in msg else f" (got {given!r})"
    return f"{key}: {msg}{suffix}"


def config_from_dict(data: dict[str, Any]) -> Config:
    """Validate a (possibly partial) nested dict into a :class:`Config`.

    Missing keys take their defaults; unknown keys and bad values raise :class:`GroklabError`.
    """
    try:
        return Config.model_validate(data)
    except ValidationError as e:
        raise GroklabError(_one_line(e)) from None


def parse_override(assignment: str) -> tuple[str, Any]:
    """Split ``'optim.lr=0.1'`` into ``('optim.lr', 0.1)``.

    The value is read as JSON (numbers, true/false, null, lists) and, failing that, kept
    as a string, so ``task.op=x/y`` and ``optim.lr=1e-3`` both do what one expects.
    """
    key, sep, raw = assignment.partition("=")
    key = key.strip()
    if not sep or not key:
        raise GroklabError(f"override '{assignment}' is not of the form key=value (e.g. optim.lr=0.01)")
    try:
        value = json.loads(raw)
    except json.JSONDecodeError:
        value = raw
    return key, value


def missing_keys(text: str) -> list[str]:
    """The dotted keys of a full config that the JSON document ``text`` does not set."""
    data = json.loads(text)

    def has(node: Any, path: list[str]) -> bool:
        for part in path:
            if not isinstance(node, dict) or part not in node:
                return False
            node = node[part]
        return True

    return [k for k in _known_keys(Config()) if not has(data, k.split("."))]


def _known_keys(model: BaseModel, prefix: str = "") -> list[str]:
    keys = []
    for name, value in model:
        path = f"{prefix}{name}"
        keys.extend(_known_keys(value, path + ".") if isinstance(value, BaseModel) else [path])
    return keys


def _suggest(key: str, known: list[str]) -> str:
    """'did you mean ...?' from close matches, else the keys of the named section, else the sections."""
    import difflib

    close = difflib.get_close_matches(key, known, n=3, cutoff=0.6)
    if close:
        return "did you mean " + " or ".join(close) + "?"
    section = key.split(".")[0]
    inside = [k for k in known if k.startswith(section + ".")]
    if inside:
        return f"known keys of {section}: {', '.join(inside)}"
    sections = sorted({k.split(".")[0] for k in known})
    return f"keys start with one of: {', '.join(sections)}"


def apply_overrides(config: Config, assignments) -> Config:
    """Return a new config with dotted ``key=value`` assignments applied, validated as a whole.

    Raises :class:`GroklabError` for an unknown key (listing the known ones nearby) or a
    value the key does not allow. The input config is never modified.
    """
    data = config.model_dump()
    known = _known_keys(config)
    for assignment in assignments:
        key, value = parse_override(assignment)
        if key not in known:
            raise GroklabError(f"unknown config key '{key}'; {_suggest(key, known)}")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config_from_dict(data)
