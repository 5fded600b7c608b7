"""Frozen, validated experiment configs with JSON round-trip and dotted overrides.

A :class:`Config` is the whole recipe of one run: ``config.json`` in a run directory holds
its resolved form and is enough to rerun the experiment exactly. Keys are dotted paths
(``optim.lr``, ``model.alpha``, ...) that outside scripts rely on; see ``../shared/DESIGN.md``.

Validation happens when a config is built, so a bad value fails before any training starts,
with a :class:`~groklab.errors.GroklabError` whose message names the key and what is allowed.
"""

from __future__ import annotations

import json
from typing import Any, Callable, ClassVar, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, SerializeAsAny, ValidationError, field_validator, model_validator

from groklab.errors import GroklabError

__all__ = [
    "TaskConfig",
    "ModelConfig",
    "OptimConfig",
    "TrainConfig",
    "EvalConfig",
    "Variant",
    "InterventionConfig",
    "WeightedConfig",
    "InterventionsConfig",
    "register_intervention_block",
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


# The built-in tasks, models and interventions register themselves when their modules are
# imported, which pulls in PyTorch. The package sets this loader (groklab/__init__) instead of
# importing them, so `import groklab` stays light; every look-up of a registered name calls it
# first, so a config validated before anything imported them sees the same registries as after.
_builtins_loader: Optional[Callable[[], None]] = None


def set_builtins_loader(load: Callable[[], None]) -> None:
    """Call ``load`` once, before the first look-up of a registered task, model or intervention."""
    global _builtins_loader
    _builtins_loader = load


def _load_builtins() -> None:
    global _builtins_loader
    load, _builtins_loader = _builtins_loader, None  # cleared first: loading imports this module's users
    if load is not None:
        load()


class Variant(_Frozen):
    """A config block that comes in registered variants: ``task`` and ``model``.

    Each variant is a subclass with its own fields and a ``Literal`` name, registered by the
    module that implements it (``@TaskConfig.register``), so a new task or model adds a file
    and edits no list here. Building the family class picks the variant by ``name``
    (``TaskConfig(p=113)`` is a modular task; no name means ``default_variant``), and
    :meth:`parse` reads a dict the same way. ``config.json`` files written before variants
    existed hold one flat block with every variant's keys: :meth:`parse` drops the keys of
    other variants that hold their default value and refuses any other.
    """

    name: str
    family: ClassVar[str] = ""  # the config key of the block ("task", "model"), for messages
    default_variant: ClassVar[str] = ""
    variants: ClassVar[dict[str, type["Variant"]]] = {}

    def __new__(cls, *args: Any, **data: Any):
        if "variants" in cls.__dict__:  # the family class itself: build the chosen variant
            cls = cls.variant(data.get("name", cls.default_variant))
        return super().__new__(cls)

    @classmethod
    def register(cls, variant: type) -> type:
        """Class decorator: make ``variant`` (a subclass with a ``Literal`` name) selectable by its name."""
        cls.variants[variant.model_fields["name"].default] = variant
        return variant

    @classmethod
    def variant(cls, name: str) -> type:
        """The registered variant called ``name``; ValueError naming the registered ones otherwise."""
        _load_builtins()
        if name not in cls.variants:
            raise ValueError(f"{cls.family}.name: unknown {cls.family} {name!r}; registered: {', '.join(sorted(cls.variants))}")
        return cls.variants[name]

    @classmethod
    def parse(cls, value: Any) -> Any:
        """A dict as the variant its ``name`` picks (see the class docstring); anything else unchanged."""
        if not isinstance(value, dict):
            return value
        name = value.get("name", cls.default_variant)
        chosen = cls.variant(name)
        clean = {}
        for key, given in value.items():
            owners = [v for v in cls.variants.values() if key in v.model_fields]
            if key in chosen.model_fields or not owners:
                clean[key] = given  # this variant's key, or unknown (extra="forbid" names it)
            elif not any(given == owner.model_fields[key].default for owner in owners):
                names = " or ".join(f"'{owner.model_fields['name'].default}'" for owner in owners)
                raise ValueError(f"{cls.family}.{key} belongs to {cls.family}.name={names}, not to "
                                 f"{cls.family}.name='{name}'")
        return chosen.model_validate(clean)

    def check(self, config: "Config") -> None:
        """Cross-checks against the rest of the config; raise ValueError naming the keys."""


InputKind = Literal["pairs", "dense"]  # operand pairs (B, 2), or float vectors (B, d)
TargetKind = Literal["classes", "scalar", "vectors"]  # class labels, float (B,), float (B, k)


class TaskConfig(Variant):
    """The data: a registered task (:mod:`groklab.tasks`; ``modular`` by default). A variant
    declares what it gives: ``inputs`` and ``targets``, which the model must take."""

    family: ClassVar[str] = "task"
    default_variant: ClassVar[str] = "modular"
    variants: ClassVar[dict[str, type[Variant]]] = {}
    inputs: ClassVar[InputKind] = "pairs"
    targets: ClassVar[TargetKind] = "classes"


class ModelConfig(Variant):
    """The network (:mod:`groklab.models`; ``mlp`` by default) and its laziness, which every
    model has: the output is ``alpha * (f(theta) - f(theta_0))`` when ``centre`` is on, and the
    learning rate is divided by ``alpha**2`` (``optim.alpha_lr_scaling``; paper 001). A variant
    declares what it takes (``accepts_inputs``, ``accepts_targets``) and whether it has a dense
    input layer that noise can be added to (``dense_input_layer``)."""

    family: ClassVar[str] = "model"
    default_variant: ClassVar[str] = "mlp"
    variants: ClassVar[dict[str, type[Variant]]] = {}
    accepts_inputs: ClassVar[tuple[str, ...]] = ("pairs",)
    accepts_targets: ClassVar[tuple[str, ...]] = ("classes",)
    dense_input_layer: ClassVar[bool] = False
    # fields the built model keeps in buffers, so members of one ensemble may differ in them
    per_member: ClassVar[tuple[str, ...]] = ()

    init_scale: float = Field(1.0, gt=0, description="multiplies every initial weight")
    alpha: float = Field(1.0, gt=0, description="output scale (laziness)")
    centre: Optional[bool] = Field(None, description="subtract the output at init; null = alpha != 1")

    @property
    def centred(self) -> bool:
        """Whether the output at init is subtracted (``centre``, or by default ``alpha != 1``)."""
        return self.alpha != 1.0 if self.centre is None else self.centre


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
    stop_at_test_acc: Optional[float] = Field(None, gt=0, le=1, description="stop once test acc holds this")
    stop_at_train_acc: Optional[float] = Field(
        None, gt=0, le=1, description="stop once train acc holds this (with stop_at_test_acc: once both hold in "
        "one evaluation, so a run stops only after it has fitted and generalised and neither first step is cut off)")
    stop_below_loss: Optional[float] = Field(
        None, gt=0, description="stop once the train and the test loss are both below this (absolute losses; "
        "with stop_at_test_acc as well, both conditions must hold)")
    stop_patience: int = Field(1, ge=1, description="evaluations the stop condition must hold")
    stop_converged_below: Optional[float] = Field(
        None, gt=0, description="stop once the train loss is below this: the run has converged (full-batch "
        "gradient descent then barely moves the weights); no patience")
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


class InterventionConfig(_Frozen):
    """One intervention's block, ``interventions.<name>``, off by default. Registered with
    :func:`register_intervention_block` by the module that implements the intervention."""

    @property
    def on(self) -> bool:
        """Whether the block's settings turn the intervention on."""
        raise NotImplementedError

    def check(self, config: "Config") -> None:
        """Cross-checks against the rest of the config; raise ValueError naming the keys."""

    @staticmethod
    def require_dense_inputs(config: "Config", what: str, instead: str) -> None:
        """ValueError unless the model has a dense one-hot input layer for ``what`` to perturb."""
        if not config.model.dense_input_layer:
            raise ValueError(f"{what} perturbs dense one-hot inputs, which model.name='{config.model.name}' does not "
                             f"have; {instead}")


class WeightedConfig(InterventionConfig):
    """The block of an intervention that adds ``weight`` times a term to the loss: on when ``weight > 0``."""

    weight: float = Field(0.0, ge=0, description="0 = off")

    @property
    def on(self) -> bool:
        return self.weight > 0


INTERVENTION_BLOCKS: dict[str, type[InterventionConfig]] = {}
_BLOCK_ORDER: dict[str, float] = {}


def register_intervention_block(name: str, block: type[InterventionConfig], order: float = 0.0) -> None:
    """Add ``interventions.<name>`` with its config class (see :mod:`groklab.interventions`);
    blocks are kept sorted by ``order``, the order the interventions run in."""
    _BLOCK_ORDER[name] = order
    INTERVENTION_BLOCKS[name] = block
    ordered = sorted(INTERVENTION_BLOCKS.items(), key=lambda item: _BLOCK_ORDER[item[0]])
    INTERVENTION_BLOCKS.clear()
    INTERVENTION_BLOCKS.update(ordered)


class InterventionsConfig(_Frozen):
    """Interventions on training (see :mod:`groklab.interventions`): one block per registered
    intervention, all off by default and freely combined; ``interventions.perturb`` etc."""

    model_config = ConfigDict(frozen=True, extra="allow", validate_default=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _blocks(cls, data: Any) -> Any:
        _load_builtins()
        if isinstance(data, InterventionsConfig):
            return data
        data = dict(data or {})
        unknown = sorted(set(data) - set(INTERVENTION_BLOCKS))
        if unknown:
            raise ValueError(f"interventions.{unknown[0]}: unknown intervention; registered: "
                             f"{', '.join(INTERVENTION_BLOCKS)}")
        out = {}
        for name, block in INTERVENTION_BLOCKS.items():
            given = data.get(name, {})
            try:
                out[name] = given if isinstance(given, block) else block.model_validate(given)
            except ValidationError as e:
                raise ValueError(f"interventions.{name}.{_one_line(e)}") from None
        return out

    def blocks(self) -> dict[str, InterventionConfig]:
        """Every block by name, in registration order."""
        return dict(self.__pydantic_extra__ or {})


class LinearizedConfig(_Frozen):
    """A linearised copy of the network, ``f(theta_0) + J(theta_0) (theta - theta_0)``, trained side
    by side from the same initialisation on the same batches with the same optimiser settings
    (paper 001, section 4.1); each evaluation adds its losses, accuracies and distance to the
    network as ``lin.*`` columns (:mod:`groklab.interventions.linearized`)."""

    enabled: bool = False

    @property
    def on(self) -> bool:
        return self.enabled


_KIND_WORDS = {
    "pairs": "operand pairs",
    "dense": "dense float inputs",
    "classes": "class labels",
    "scalar": "scalar regression targets",
    "vectors": "vector regression targets",
}


class Config(_Frozen):
    """One experiment. Build with keyword arguments, :func:`config_from_dict`, a preset
    (:func:`groklab.presets.load_preset`) and :func:`apply_overrides`."""

    # The name becomes a folder under runs/: letters, digits, '.', '_' and '-', so it cannot leave it.
    name: str = Field("custom", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
    seed: int = Field(0, ge=0)
    # SerializeAsAny: dump the variant's own fields, not only the family's.
    task: SerializeAsAny[TaskConfig] = Field(default_factory=TaskConfig)
    model: SerializeAsAny[ModelConfig] = Field(default_factory=ModelConfig)
    optim: OptimConfig = OptimConfig()
    train: TrainConfig = TrainConfig()
    eval: EvalConfig = EvalConfig()
    interventions: InterventionsConfig = Field(default_factory=InterventionsConfig)
    linearized: LinearizedConfig = LinearizedConfig()

    @field_validator("task", "model", mode="before")
    @classmethod
    def _pick_variant(cls, value: Any, info) -> Any:
        return {"task": TaskConfig, "model": ModelConfig}[info.field_name].parse(value)

    @model_validator(mode="after")
    def _cross_checks(self) -> "Config":
        if self.optim.name == "gd" and self.train.batch_size is not None:
            raise ValueError("optim.name='gd' is full-batch; set train.batch_size=null or use optim.name='sgd'")
        return self

    @model_validator(mode="after")
    def _model_takes_the_task(self) -> "Config":
        # The declarations of the two variants, not their names, decide what fits.
        task, model = self.task, self.model
        for kind, given, accepted in (("inputs", task.inputs, "accepts_inputs"), ("targets", task.targets, "accepts_targets")):
            if given not in getattr(model, accepted):
                takers = [n for n, v in ModelConfig.variants.items()
                          if task.inputs in v.accepts_inputs and task.targets in v.accepts_targets]
                raise ValueError(f"task.name='{task.name}' gives {_KIND_WORDS[given]}, which model.name='{model.name}' "
                                 f"does not take; use model.name={' or '.join(repr(n) for n in takers)}")
        if task.targets != "classes" and self.train.loss != "mse":
            raise ValueError(f"task.name='{task.name}' is regression; set train.loss='mse'")
        task.check(self)
        model.check(self)
        for block in self.interventions.blocks().values():
            if block.on:
                block.check(self)
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

    def dotted_keys(self) -> list[str]:
        """Every dotted key this config has (its task and model variants' own keys included)."""
        return _known_keys(self)

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
        raise GroklabError(f"override '{assignment}' is not of the form key=value (e.g. optim.lr=0.01; a preset "
                           "or recipe name goes before --set)")
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

    return [k for k in _known_keys(config_from_dict(data)) if not has(data, k.split("."))]


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


def _other_variant(key: str, data: dict) -> str:
    """'it is a key of task.name=...' when ``key`` belongs to another variant of its family."""
    family, _, leaf = key.partition(".")
    base = {"task": TaskConfig, "model": ModelConfig}.get(family)
    owners = [name for name, v in (base.variants.items() if base else ()) if leaf in v.model_fields]
    if not owners:
        return ""
    return (f"it is a key of {family}.name={' or '.join(repr(o) for o in owners)} (this config has "
            f"{family}.name={data[family]['name']!r}; set {family}.name too)")


def apply_overrides(config: Config, assignments) -> Config:
    """Return a new config with dotted ``key=value`` assignments applied, validated as a whole.

    Raises :class:`GroklabError` for an unknown key (listing the known ones nearby) or a
    value the key does not allow. The input config is never modified.
    """
    data = config.model_dump()
    parsed = [parse_override(assignment) for assignment in assignments]
    # A change of task or model variant first, whatever its place: the new variant's keys are
    # then known, and the old variant's own keys do not carry over.
    for key, value in parsed:
        family = {"task.name": TaskConfig, "model.name": ModelConfig}.get(key)
        if family is not None and value != data[family.family]["name"]:
            try:
                fields = family.variant(value).model_fields
            except ValueError as e:
                raise GroklabError(str(e)) from None
            data[family.family] = {k: v for k, v in data[family.family].items() if k in fields} | {"name": value}
    # The keys of the variants now chosen (checked alone: the rest may only fit after the overrides).
    sections = dict(config) | {"task": TaskConfig.parse(data["task"]), "model": ModelConfig.parse(data["model"])}
    known = _known_keys(Config.model_construct(**sections))
    for key, value in parsed:
        if key not in known:
            raise GroklabError(f"unknown config key '{key}'; {_other_variant(key, data) or _suggest(key, known)}")
        *parents, leaf = key.split(".")
        node = data
        for part in parents:
            node = node[part]
        node[leaf] = value
    return config_from_dict(data)
