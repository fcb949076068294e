"""The training configuration's schema: every key, its type and range, checked in one place.

``validate_config(cfg)`` runs once, before any work, on the composed config (Hydra's output as
plain dicts). Unknown keys (``+foo=1``, a typo such as ``+trainer.max_step=5``), wrong types
(``trainer.batch_size=abc``) and out-of-range values (``trainer.max_steps=0``,
``optim.blr=inf``) each give one :class:`ConfigError` naming the key and the value. Options that
plug-ins take (policy and objective options) are checked against the plug-in's own signature.

Which keys a resumed run may change is declared here too (``resumable=True`` on a field): any
other difference between a checkpoint's config and the current one means another run.
"""

from __future__ import annotations

import typing
from collections.abc import Mapping
from dataclasses import fields as dataclass_fields
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, create_model, field_validator, model_validator

from adamae_rl.data.synthetic import BACKGROUNDS, LABELS
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
    # Defaults for configs written before these keys existed: what those runs used.
    eps: float = Field(default=1e-8, gt=0)
    policy_eps: float = Field(default=1e-8, gt=0)

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
    # The background's kind. The default here is what a run stored before the key existed trained
    # on (fine); data/synthetic.yaml sets smooth.
    background: Literal[BACKGROUNDS] = "fine"
    num_workers: int = resumable(ge=0)


class VideoData(_Section):
    name: Literal["video"]
    train_list: str | None = None
    val_list: str | None = None
    root: str | None = None
    temporal_mode: Literal["dense", "segments"]
    sampling_rate: int = Field(ge=1)
    scales: list[float] = Field(min_length=1)
    max_distort: int = Field(ge=0)
    flip: bool
    repeat: int = Field(ge=1)
    # Resumable: a run started before "auto" (null, native size) may continue at the new default;
    # the clips differ by scaler rounding, as between decoders.
    decode_short_side: Literal["auto"] | Annotated[int, Field(ge=1)] | None = resumable("auto")
    decode_threads: int = Field(ge=0)
    # Every backend gives the same frames, so a resumed run may switch (or predate these keys).
    decoder: str = resumable("auto")
    decode_device: str = resumable("cpu")
    num_workers: int = resumable(ge=0)
    persistent_workers: bool = resumable()
    strict: bool
    max_skip_share: float = Field(ge=0, le=1)

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


class TrainConfig(_Section):
    policy: dict[str, Any]
    model: ModelConfig  # type: ignore[valid-type]
    data: dict[str, Any]
    objective: dict[str, Any]
    mask_ratio: float = Field(gt=0, lt=1)
    imports: list[str] = Field(default_factory=list)
    token_grad: bool = False
    decoder_mask: DecoderMaskConfig | None = None
    run_dir: str = resumable(min_length=1)
    trainer: TrainerConfig
    optim: OptimConfig
    # Resumable: runs written before the section existed logged to TensorBoard.
    logger: LoggerConfig = resumable(LoggerConfig())


def validate_config(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """Check the whole training config; returns it unchanged (plain dicts) when it is valid.

    Plug-in modules named in ``imports`` are imported first, so that their registered policies,
    model presets, objectives and data sources are known.

    Raises:
        ConfigError: every problem found, ``key: problem (got value)``, on one line.
    """
    problems = _schema_problems(TrainConfig, cfg)
    if not problems:
        from adamae_rl.builders import import_plugins

        import_plugins(cfg.get("imports"))
        problems += _data_problems(cfg["data"])
    if not problems:
        problems += _plugin_problems(cfg)
    if not problems:
        problems += _decoder_mask_problems(cfg)
    if problems:
        raise ConfigError("; ".join(problems))
    return dict(cfg)


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
                ("data.", VideoData))
    for prefix, section in sections:
        for name, info in section.model_fields.items():
            if (info.json_schema_extra or {}).get("resumable"):
                keys.add(prefix + name)
    return keys


def with_added_defaults(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """A stored run config with the ``trainer``/``optim`` (and synthetic ``data``) keys it
    predates filled in.

    A key added to the schema later has the default that reproduces what runs before it did, so a
    run written then compares equal to today's config where it ran the same way, and is evaluated
    on the data it trained on.
    """
    out = dict(cfg)
    sections: list[tuple[str, type[BaseModel]]] = [("trainer", TrainerConfig), ("optim", OptimConfig)]
    if isinstance(out.get("data"), Mapping) and out["data"].get("name") == "synthetic":
        sections.append(("data", SyntheticData))
    for name, section in sections:
        if isinstance(out.get(name), Mapping):
            values = dict(out[name])
            for key, info in section.model_fields.items():
                if key not in values and not info.is_required() and info.default_factory is None:
                    values[key] = info.default
            out[name] = values
    return out


def _schema_problems(section: type[BaseModel], values: Any, prefix: str = "") -> list[str]:
    try:
        section.model_validate(values)
    except ValidationError as err:
        return [describe_error(e, prefix) for e in err.errors(include_url=False)
                if not (prefix == "" and e["loc"][:1] == ("data",) and len(e["loc"]) > 1)]
    return []


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
