"""The training configuration's schema: every key, its type and range, checked in one place.

``validate_config(cfg)`` runs once, before any work, on the composed config (Hydra's output as
plain dicts). Unknown keys (``+foo=1``, a typo such as ``+trainer.max_step=5``), wrong types
(``trainer.batch_size=abc``) and out-of-range values (``trainer.max_steps=0``,
``optim.blr=inf``) each give one :class:`ConfigError` naming the key and the value. Options that
plug-ins take (policy and objective options) are checked against the plug-in's own signature.

``validate_config`` returns the typed :class:`TrainConfig`: training reads ``cfg.trainer.batch_size``,
``cfg.optim.policy_eps``, never a string look-up with a fallback. The ``policy``, ``objective`` and
``data`` sections carry a plug-in's own options besides ``name``; ``cfg.data.options()`` gives them
back as the keyword arguments the plug-in takes.

Each setting has one default, the field's default here, which the YAML configs repeat (a test
holds them equal). What a run stored before a key existed ran with is not a default: it is in
:data:`LEGACY_DEFAULTS`, read only when a stored run is loaded (:func:`with_legacy_defaults`).

Which keys a resumed run may change is declared here too (``resumable=True`` on a field): any
other difference between a checkpoint's config and the current one means another run.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from adamae_rl.config import import_plugins
from adamae_rl.data.synthetic import BACKGROUNDS, DEFAULT_BACKGROUND, LABELS
from adamae_rl.data.video import DEFAULT_DECODE_SHORT_SIDE, DEFAULT_MAX_SKIP_SHARE, DEFAULT_STRICT, SamplingOptions
from adamae_rl.errors import ConfigError
from adamae_rl.models.videomae import MAEConfig
from adamae_rl.utils.signature import describe_error, signature_problems


# ConfigError: a configuration value is unknown, of the wrong type or out of range (one line).


def resumable(default: Any = ..., **constraints: Any) -> Any:
    """A field that may differ between a run and its resumption (logging, devices, length)."""
    return Field(default, json_schema_extra={"resumable": True}, **constraints)


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False, validate_default=True)


def _one_of(values: BaseModel, steps_key: str, epochs_key: str, required: bool) -> None:
    """A length given in steps or in epochs: not both (and, when ``required``, one of them)."""
    steps, epochs = getattr(values, steps_key), getattr(values, epochs_key)
    if steps is not None and epochs is not None:
        raise ValueError(
            f"{steps_key}={steps} and {epochs_key}={epochs} are both set: give one "
            f"(e.g. {steps_key}=null to count in epochs)"
        )
    if required and steps is None and epochs is None:
        raise ValueError(f"one of {steps_key} and {epochs_key} must be set")


class TrainerConfig(_Section):
    # The run's length in optimizer steps, or in epochs of the training list (one of them; an
    # epoch is every clip once, over all processes).
    max_steps: int | None = resumable(ge=1)
    max_epochs: float | None = resumable(None, gt=0)
    batch_size: int = Field(ge=1)  # clips per process per micro-batch
    # Micro-batches per optimizer step (gradient accumulation): the effective batch is
    # batch_size * world_size * accum_steps, and the learning rate scales with it.
    accum_steps: int = Field(1, ge=1)
    # The effective batch to reach whatever the number of processes: accum_steps then follows as
    # global_batch_size / (batch_size * world_size), which must be a whole number.
    global_batch_size: int | None = Field(None, ge=1)
    log_every: int = resumable(ge=1)
    eval_every: int = resumable(ge=1)
    eval_batches: int = resumable(ge=1)
    ckpt_every: int = resumable(ge=1)
    keep_checkpoints: int = resumable(ge=0)
    device: str = resumable()
    precision: Literal["fp32", "bf16", "fp16", "auto"]
    compile: bool = resumable(False)
    seed: int = Field(ge=0)
    resume: str = resumable()
    on_nonfinite: Literal["stop", "skip"]
    max_nonfinite: int = Field(ge=1)
    progress: bool = resumable()
    tensorboard: bool = resumable()

    @field_validator("resume", mode="before")
    @classmethod
    def _resume_text(cls, value: Any) -> Any:
        return {False: "never", None: "never"}.get(value, value) if not isinstance(value, str) else value

    @model_validator(mode="after")
    def _length(self) -> TrainerConfig:
        _one_of(self, "max_steps", "max_epochs", required=True)
        if self.global_batch_size is not None and self.accum_steps != 1:
            raise ValueError(
                f"accum_steps={self.accum_steps} and global_batch_size={self.global_batch_size} are both set: "
                "give one (global_batch_size derives accum_steps from the number of processes)"
            )
        return self


class OptimConfig(_Section):
    blr: float = Field(gt=0)
    min_lr: float = Field(ge=0)
    # The floor as a base rate like blr (min_lr = min_blr * effective batch / 256, as VideoMAE and
    # AdaMAE scale it); null keeps min_lr as given.
    min_blr: float | None = Field(None, ge=0)
    # Warmup in optimizer steps or in epochs (one of them).
    warmup_steps: int | None = Field(ge=0)
    warmup_epochs: float | None = Field(None, ge=0)
    weight_decay: float = Field(ge=0)
    betas: tuple[float, float]
    clip_grad: float | None = Field(default=None, gt=0)
    policy_lr_scale: float = Field(ge=0)
    policy_weight_decay: float = Field(ge=0)
    eps: float = Field(default=1e-8, gt=0)  # AdamW's epsilon for the MAE (VideoMAE's value)
    # AdamW's epsilon for the sampler. AdaMAE's loss (coefficient 1e-4) on raw-pixel errors of a few
    # hundredths gives sampler gradients near 1e-9; under an epsilon of 1e-8 the step would be
    # lr * grad / eps, so the sampler would slow down as the MAE improves.
    policy_eps: float = Field(default=1e-12, gt=0)

    @model_validator(mode="after")
    def _warmup(self) -> OptimConfig:
        _one_of(self, "warmup_steps", "warmup_epochs", required=True)
        return self

    @field_validator("betas")
    @classmethod
    def _betas_in_range(cls, value: tuple[float, float]) -> tuple[float, float]:
        if not all(0.0 <= b < 1.0 for b in value):
            raise ValueError(f"each beta must be in [0, 1), got {list(value)}")
        return value


# Keys of the ``model`` section that are not MAEConfig fields: which preset, where its weights
# come from, and how its forward runs.
RUN_MODEL_KEYS = ("preset", "init_from", "grad_checkpointing")


def _model_section() -> type[BaseModel]:
    """``preset``, ``init_from`` (pre-trained weights) and any :class:`MAEConfig` field: sizes and
    counts >= 1, ratios > 0."""
    hints = typing.get_type_hints(MAEConfig)
    spec: dict[str, Any] = {
        "preset": (str, ...),
        "init_from": (str | None, None),
        # Recompute each transformer block's activations in the backward pass instead of keeping
        # them (less memory, ~1/3 more compute); weights are unaffected, so a resume may change it.
        "grad_checkpointing": (bool, resumable(False)),
    }
    for f in dataclass_fields(MAEConfig):
        kind = hints[f.name]
        constraint = {"ge": 1} if kind is int else {"gt": 0} if kind is float else {}
        spec[f.name] = (kind | None, Field(default=None, **constraint))
    return create_model("ModelConfig", __base__=_Section, **spec)


ModelConfig = _model_section()


class SyntheticData(_Section):
    name: Literal["synthetic"]
    num_clips: int = Field(ge=1)
    val_clips: int = Field(ge=1)
    max_shapes: int = Field(ge=1)
    # Which labels the clips carry (evaluation only; training never reads them), so resumable.
    label: Literal[LABELS] = resumable("direction")
    # The background's kind: smooth (0.25-1 colour-wave cycle per frame side) leaves the MAE's
    # error on the moving shapes; fine (1-4 cycles) is the ablation benchmark's harder background.
    background: Literal[BACKGROUNDS] = DEFAULT_BACKGROUND
    num_workers: int = resumable(ge=0)


class VideoData(_Section):
    """``data=video``; the sampling defaults are :class:`~adamae_rl.data.video.SamplingOptions`'."""

    name: Literal["video"]
    train_list: str | None = None
    val_list: str | None = None
    root: str | None = None
    temporal_mode: Literal["dense", "segments"] = SamplingOptions.temporal_mode
    sampling_rate: int = Field(SamplingOptions.sampling_rate, ge=1)
    scales: list[float] = Field(list(SamplingOptions.scales), min_length=1)
    max_distort: int = Field(SamplingOptions.max_distort, ge=0)
    flip: bool = SamplingOptions.flip
    repeat: int = Field(SamplingOptions.repeat, ge=1)
    # Resumable: the decoded size changes the clips only by the scaler's rounding, as a change of
    # decoder does.
    decode_short_side: Literal["auto"] | Annotated[int, Field(ge=1)] | None = resumable(DEFAULT_DECODE_SHORT_SIDE)
    decode_threads: int = Field(SamplingOptions.decode_threads, ge=0)
    # Every backend gives the same frames, so a resumed run may switch.
    decoder: str = resumable(SamplingOptions.decoder)
    decode_device: str = resumable(SamplingOptions.decode_device)
    num_workers: int = resumable(ge=0)
    persistent_workers: bool = resumable()
    strict: bool = DEFAULT_STRICT
    max_skip_share: float = Field(DEFAULT_MAX_SKIP_SHARE, ge=0, le=1)

    @field_validator("scales")
    @classmethod
    def _scales_in_range(cls, value: list[float]) -> list[float]:
        if not all(0.0 < s <= 1.0 for s in value):
            raise ValueError(f"each scale must be in (0, 1], got {value}")
        return value


DATA_SECTIONS: dict[str, type[BaseModel]] = {"synthetic": SyntheticData, "video": VideoData}


class LoaderSection(_Section):
    """The batch stream's keys of a plug-in data source's section (its other keys go to the source)."""

    name: str
    num_workers: int = resumable(0, ge=0)
    persistent_workers: bool = resumable(False)


class DecoderMaskConfig(_Section):
    """Decoder masking (``adamae_rl.envs.decoder_masks``): which masked tokens the decoder rebuilds."""

    name: Literal["none", "running_cell", "random"]
    ratio: float = Field(0.5, gt=0, lt=1)


class LoggerConfig(_Section):
    """Where the run's metrics go besides ``metrics.jsonl`` (``logger=tensorboard|wandb|none``;
    :mod:`adamae_rl.utils.logs`). Logging never changes what a run computes, so every key is resumable."""

    name: Literal["tensorboard", "wandb", "none"] = resumable("tensorboard")
    project: str = resumable("adamae_rl", min_length=1)  # W&B project
    entity: str | None = resumable(None)  # W&B team or user (null: the account's default)
    mode: Literal["online", "offline", "disabled"] = resumable("online")  # W&B: offline writes RUN_DIR/wandb only


class PluginSection(BaseModel):
    """A section that names a plug-in (``name``) and carries the plug-in's own options as further
    keys; the options are checked against the plug-in's signature by :func:`validate_config`."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None

    def options(self) -> dict[str, Any]:
        """The section as a plain dict (``name`` included where it was given), as the builders
        and the registries take it."""
        values = self.model_dump(mode="json")
        if values.get("name") is None and "name" not in self.model_fields_set:
            values.pop("name", None)
        return values


class PolicySection(PluginSection):
    """``policy``: ``name`` (a registered policy) or ``_target_`` (a class path), plus its options."""


class ObjectiveSection(PluginSection):
    """``objective``: a registered objective's ``name`` plus its options."""

    name: str


class DataSection(PluginSection):
    """``data``: a registered clip source's ``name`` plus its options (the built-in ``synthetic``
    and ``video`` sources are checked against :class:`SyntheticData` and :class:`VideoData`, and
    their defaults filled in)."""

    name: str


class TrainConfig(_Section):
    """The whole training configuration, checked (see :func:`validate_config`)."""

    policy: PolicySection
    model: ModelConfig  # type: ignore[valid-type]
    data: DataSection
    objective: ObjectiveSection
    mask_ratio: float = Field(gt=0, lt=1)
    imports: list[str] = Field(default_factory=list)
    token_grad: bool = False
    decoder_mask: DecoderMaskConfig | None = None
    run_dir: str = resumable(min_length=1)
    trainer: TrainerConfig
    optim: OptimConfig
    # Resumable: where the metrics go never changes what a run computes.
    logger: LoggerConfig = resumable(LoggerConfig())

    @field_validator("data", mode="after")
    @classmethod
    def _built_in_defaults(cls, data: DataSection) -> DataSection:
        """A built-in source's section with its defaults filled in, so that a run records every
        value it used (an invalid one is left for :func:`validate_config` to report)."""
        section = DATA_SECTIONS.get(str(data.name))
        if section is None:
            return data
        try:
            return DataSection.model_validate(section.model_validate(data.options()).model_dump(mode="json"))
        except ValidationError:
            return data

    def as_dict(self) -> dict[str, Any]:
        """Plain values (lists, dicts, numbers, strings) for config.yaml and checkpoints; model
        fields left to the preset (None) are left out."""
        values = self.model_dump(mode="json")
        for section in ("policy", "data", "objective"):
            values[section] = getattr(self, section).options()
        values["model"] = {k: v for k, v in values["model"].items() if v is not None or k in RUN_MODEL_KEYS}
        return values


# What runs stored before a key existed ran with, by section (``data.<source>`` for a source's
# section). Used only to read a stored run (:func:`with_legacy_defaults`); a new run takes the
# schema's defaults. A key added to the schema later belongs here with the value that reproduces
# the runs written before it.
LEGACY_DEFAULTS: dict[str, dict[str, Any]] = {
    "": {"imports": [], "token_grad": False, "decoder_mask": None, "logger": {"name": "tensorboard"}},
    "model": {"init_from": None, "grad_checkpointing": False},
    "trainer": {"max_epochs": None, "accum_steps": 1, "global_batch_size": None, "compile": False},
    "optim": {"min_blr": None, "warmup_epochs": None, "clip_grad": None, "eps": 1e-8, "policy_eps": 1e-8},
    "data.synthetic": {"label": "direction", "background": "fine"},
    # Clips were decoded at their native size before decode_short_side=auto.
    "data.video": {"decode_short_side": None, "decoder": "auto", "decode_device": "cpu"},
}


def with_legacy_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run's config with the keys it predates filled in from :data:`LEGACY_DEFAULTS`.

    So a run written before a key existed compares equal to today's config where it ran the same
    way, and is rebuilt and evaluated as it ran (e.g. on the background it trained on).
    """
    out = dict(cfg)
    for section, values in LEGACY_DEFAULTS.items():
        name, _, source = section.partition(".")
        if not name:
            target = out
        elif isinstance(out.get(name), Mapping) and (not source or out[name].get("name") == source):
            target = out[name] = dict(out[name])
        else:
            continue
        for key, value in values.items():
            target.setdefault(key, value)
    return out


def stored_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run's config as :meth:`TrainConfig.as_dict` writes it today (legacy defaults, then
    the schema's normal form), for comparing with a current config; where the stored config does
    not pass today's schema, it is returned with the legacy defaults only. Imports nothing."""
    filled = with_legacy_defaults(cfg)
    try:
        return TrainConfig.model_validate(filled).as_dict()
    except ValidationError:
        return filled


def validate_config(cfg: Mapping[str, Any] | TrainConfig) -> TrainConfig:
    """Check the whole training config; returns it typed.

    Plug-in modules named in ``imports`` are imported first, so that their registered policies,
    model presets, objectives and data sources are known.

    Raises:
        ConfigError: every problem found, ``key: problem (got value)``, on one line.
    """
    if isinstance(cfg, TrainConfig):
        cfg = cfg.as_dict()
    typed, invalid = None, None
    try:
        typed = TrainConfig.model_validate(cfg)
    except ValidationError as err:
        invalid = err
    problems = _describe(invalid, "") if invalid is not None else []
    if not problems:
        import_plugins(cfg.get("imports"))
        problems += _data_problems(cfg["data"])
    if not problems:
        problems += _plugin_problems(cfg)
    if not problems:
        problems += _decoder_mask_problems(cfg)
    if typed is None and not problems:  # only data-section errors, which the source's checks missed
        problems = [describe_error(e, "") for e in invalid.errors(include_url=False)]
    if problems:
        raise ConfigError("; ".join(problems))
    return typed


def as_config(cfg: Mapping[str, Any] | TrainConfig) -> TrainConfig:
    """``cfg`` typed: a :class:`TrainConfig` as it is, a mapping through :func:`validate_config`."""
    return cfg if isinstance(cfg, TrainConfig) else validate_config(cfg)


def _data_problems(data: Mapping[str, Any]) -> list[str]:
    """Built-in data sources against their sections; plug-ins against their factory's signature."""
    from adamae_rl.data.factory import DATA_SOURCES  # registers the built-in sources
    from adamae_rl.data.sources import LOADER_KEYS, RUN_ARGUMENTS

    name = str(data.get("name"))
    if name in DATA_SECTIONS:
        return _schema_problems(DATA_SECTIONS[name], data, "data.")
    try:
        factory = DATA_SOURCES.get(name)
    except ValueError as err:
        return [f"data.name: {err}"]
    options = {k: v for k, v in data.items() if k not in LOADER_KEYS}
    return _schema_problems(LoaderSection, {k: v for k, v in data.items() if k in LOADER_KEYS}, "data.") + signature_problems(
        factory, options, "data.", skip=RUN_ARGUMENTS
    )


def resumable_keys() -> set[str]:
    """Dotted keys that a resumed run may change (declared with :func:`resumable`)."""
    keys = set()
    sections = (("", TrainConfig), ("trainer.", TrainerConfig), ("model.", ModelConfig), ("data.", SyntheticData),
                ("data.", VideoData), ("logger.", LoggerConfig))
    for prefix, section in sections:
        for name, info in section.model_fields.items():
            if (info.json_schema_extra or {}).get("resumable"):
                keys.add(prefix + name)
    return keys


def _schema_problems(section: type[BaseModel], values: Any, prefix: str = "") -> list[str]:
    try:
        section.model_validate(values)
    except ValidationError as err:
        return _describe(err, prefix)
    return []


def _describe(err: ValidationError, prefix: str) -> list[str]:
    """One ``key: problem (got value)`` per error; a data section's own errors are left to
    :func:`_data_problems`, which checks it against its source's section."""
    return [describe_error(e, prefix) for e in err.errors(include_url=False)
            if not (prefix == "" and e["loc"][:1] == ("data",) and len(e["loc"]) > 1)]


def _plugin_problems(cfg: Mapping[str, Any]) -> list[str]:
    """Model preset, policy and objective options against the registries and the plug-ins' own
    signatures (names and types)."""
    from adamae_rl.models.presets import MODELS
    from adamae_rl.objectives import OBJECTIVES
    from adamae_rl.policies.registry import GEOMETRY_KEYS, resolve_factory

    problems = []
    try:
        MODELS.get(str(cfg["model"]["preset"]))
    except ValueError as err:
        problems.append(f"model.preset: {err}")
    try:
        factory, options = resolve_factory({k: v for k, v in cfg["policy"].items() if v is not None})
        problems += signature_problems(factory, options, "policy.", skip=GEOMETRY_KEYS)
    except ValueError as err:
        factory = None
        problems.append(f"policy: {err}")
    objective = dict(cfg["objective"])
    name = objective.pop("name", None)
    accepted = getattr(factory, "objectives", None) if isinstance(factory, type) else None
    if accepted and name not in accepted:  # e.g. loss_predictor is trained by loss_prediction only
        problems.append(f"objective.name: policy {cfg['policy'].get('name')} is trained by objective={' or objective='.join(accepted)}, got {name!r}")
    try:
        problems += signature_problems(OBJECTIVES.get(str(name)), objective, "objective.", skip=("policy",))
    except ValueError as err:
        problems.append(f"objective.name: {err}")
    return problems


def _decoder_mask_problems(cfg: Mapping[str, Any]) -> list[str]:
    """A decoder mask that the model's token grid and the mask ratio cannot serve (odd grid for
    2x2 cells, a ratio in other than quarters, nothing left to reconstruct)."""
    spec = cfg.get("decoder_mask")
    if not spec or spec.get("name") == "none":
        return []
    from adamae_rl.envs.decoder_masks import make_decoder_mask
    from adamae_rl.models.presets import mae_config
    from adamae_rl.policies.distributions import count_masked

    fields = {k: v for k, v in cfg["model"].items() if k not in RUN_MODEL_KEYS and v is not None}
    try:
        model = mae_config(str(cfg["model"]["preset"]), **fields)
    except ValueError:  # a plug-in preset: the env checks the decoder mask when it is built
        return []
    try:
        make_decoder_mask(spec, model.grid, count_masked(model.num_tokens, float(cfg["mask_ratio"])))
    except ValueError as err:
        return [f"decoder_mask: {err}"]
    return []
