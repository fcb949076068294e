"""Run metrics: JSON lines (always), and TensorBoard events or Weights & Biases (optional).

Where the metrics go is the run config's ``logger`` section (a Hydra group, ``logger=NAME``):

- ``tensorboard`` (default): TensorBoard events in ``RUN_DIR/tb`` while ``trainer.tensorboard`` is
  true (the run's scalars, the mask figures at every evaluation, and at the end the run's
  hyper-parameters with its final held-out metrics in TensorBoard's HParams tab, metric names
  prefixed ``hparam/``);
- ``wandb``: the same to a Weights & Biases run (``pip install adamae_rl[wandb]``), with
  ``logger.project``, ``logger.entity`` and ``logger.mode`` (``online``, ``offline``: files in
  ``RUN_DIR/wandb`` to upload later with ``wandb sync``, ``disabled``). The W&B run's id is kept in
  ``RUN_DIR/wandb_id.txt``, so a resumed training continues the same W&B run;
- ``none``: ``metrics.jsonl`` only.

``metrics.jsonl`` is written in every case.
"""

from __future__ import annotations

import json
import math
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from adamae_rl.errors import ConfigError

LOGGERS = ("tensorboard", "wandb", "none")
# Prefix of the final metrics in TensorBoard's HParams tab: their own tags, apart from the time
# series of the same metrics (the same tag twice would add a point to that series).
HPARAM_PREFIX = "hparam/"


def flatten_config(cfg: Mapping[str, Any], prefix: str = "") -> dict[str, bool | int | float | str]:
    """A nested config as ``{"trainer.batch_size": 16, ...}`` with scalar values only.

    Hyper-parameter tables take scalars: lists become their JSON text (``"[0.9, 0.95]"``), None
    becomes ``"null"``, anything else that is not a bool, int, float or str its ``str``.
    """
    out: dict[str, bool | int | float | str] = {}
    for key, value in cfg.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            out.update(flatten_config(value, f"{name}."))
        elif value is None:
            out[name] = "null"
        elif isinstance(value, (bool, int, float, str)):
            out[name] = value
        elif isinstance(value, (list, tuple)):
            out[name] = json.dumps([_plain(v) for v in value], default=str)
        else:
            out[name] = str(_plain(value))
    return out


def check_logger(logger: Mapping[str, Any] | None) -> None:
    """Fail early, before any work, when the chosen logger cannot run (``logger=wandb`` without
    the ``wandb`` package).

    Raises:
        ConfigError: with the install command.
    """
    if logger is not None and logger.get("name") == "wandb":
        _import_wandb()


def _import_wandb() -> Any:
    try:
        import wandb
    except ImportError:
        raise ConfigError(
            "logger=wandb needs the wandb package: pip install 'adamae_rl[wandb]' (or pip install wandb); "
            "logger=tensorboard and logger=none need nothing more"
        ) from None
    return wandb


class MetricLog:
    """Append ``{"step": s, name: value, ...}`` records to ``metrics.jsonl``, and to TensorBoard or W&B.

    On resume, records newer than the checkpoint's step (written after it by the interrupted
    process) are dropped first, so the log reads as one uninterrupted run.

    Args:
        run_dir: the run directory.
        tensorboard: ``trainer.tensorboard``: False turns TensorBoard off whatever ``logger`` says.
        resume_step: the checkpoint's step when the run resumes, else None.
        logger: the config's ``logger`` section (``name``, and ``project``/``entity``/``mode``
            for W&B); None: TensorBoard, as before the section existed.
    """

    def __init__(self, run_dir: str | Path, tensorboard: bool = True, resume_step: int | None = None,
                 logger: Mapping[str, Any] | None = None) -> None:
        logger = dict(logger or {"name": "tensorboard"})
        if logger.get("name") not in LOGGERS:
            raise ConfigError(f"logger.name must be one of {', '.join(LOGGERS)}, got {logger.get('name')!r}")
        self.path = Path(run_dir) / "metrics.jsonl"
        self.path.parent.mkdir(parents=True, exist_ok=True)
        if resume_step is not None and self.path.exists():
            self._truncate_after(resume_step)
        elif resume_step is None and self.path.exists():
            self.path.unlink()
        self._file = open(self.path, "a", encoding="utf-8")
        self._tb = None
        self._wandb = None
        if tensorboard and logger["name"] == "tensorboard":
            from torch.utils.tensorboard import SummaryWriter

            self._tb = SummaryWriter(str(Path(run_dir) / "tb"), purge_step=resume_step)
        elif logger["name"] == "wandb":
            self._wandb = _start_wandb(Path(run_dir), logger, resumed=resume_step is not None)

    @property
    def wants_figures(self) -> bool:
        """Whether :meth:`log_figure` goes anywhere (so callers skip drawing figures otherwise)."""
        return self._tb is not None or self._wandb is not None

    def _truncate_after(self, step: int) -> None:
        kept = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line).get("step", 0) <= step:
                    kept.append(line)
            except json.JSONDecodeError:
                continue  # a line torn by a kill
        self.path.write_text("".join(f"{line}\n" for line in kept), encoding="utf-8")

    def log(self, step: int, values: dict[str, Any]) -> None:
        record = {"step": step, **{k: _plain(v) for k, v in values.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        numbers = {k: v for k, v in record.items() if k != "step" and _is_number(v)}
        if self._tb is not None:
            for key, value in numbers.items():
                self._tb.add_scalar(key, value, step)
        if self._wandb is not None and numbers:
            self._wandb.log(numbers, step=step)

    def log_hparams(self, flat_config: Mapping[str, Any], metrics: Mapping[str, Any]) -> None:
        """The run's hyper-parameters and its final metrics, as one entry of a hyper-parameter table.

        Args:
            flat_config: ``{dotted key: scalar}``, e.g. :func:`flatten_config` of the run config
                (values that are not scalars are written as text).
            metrics: final figures; the finite numbers among them are kept (TensorBoard: under
                ``hparam/<name>``; W&B: the run's summary).
        """
        hparams = flatten_config(dict(flat_config))
        final = {k: float(_plain(v)) for k, v in metrics.items() if _is_number(_plain(v))}
        if self._tb is not None:
            # run_name ".": the table entry joins the run's own folder instead of a new timestamped one
            self._tb.add_hparams(hparams, {f"{HPARAM_PREFIX}{k}": v for k, v in final.items()}, run_name=".")
            self._tb.flush()
        if self._wandb is not None:
            self._wandb.config.update(hparams, allow_val_change=True)
            self._wandb.summary.update(final)

    def log_figure(self, tag: str, fig: Any, step: int) -> None:
        """A matplotlib figure as an image at ``step``; the figure is closed. ``fig`` None: nothing."""
        if fig is None:
            return
        import matplotlib.pyplot as plt

        try:
            if self._tb is not None:
                self._tb.add_figure(tag, fig, step, close=False)
            if self._wandb is not None:
                wandb = _import_wandb()
                self._wandb.log({tag: wandb.Image(fig)}, step=step)
        finally:
            plt.close(fig)

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()
        if self._wandb is not None:
            self._wandb.finish()


def _start_wandb(run_dir: Path, logger: Mapping[str, Any], resumed: bool) -> Any:
    """A W&B run in ``run_dir/wandb``; a resumed training continues the W&B run whose id
    ``run_dir/wandb_id.txt`` holds."""
    wandb = _import_wandb()
    id_file = run_dir / "wandb_id.txt"
    run_id = id_file.read_text(encoding="utf-8").strip() if resumed and id_file.is_file() else None
    if not run_id:
        run_id = secrets.token_hex(4)  # 8 lowercase hex digits: a valid W&B run id
        id_file.write_text(run_id + "\n", encoding="utf-8")
    return wandb.init(
        project=logger.get("project") or "adamae_rl", entity=logger.get("entity"), mode=logger.get("mode", "online"),
        dir=str(run_dir), name=run_dir.name, id=run_id, resume="allow",
    )


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _plain(value: Any) -> Any:
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)  # JSON has no NaN/inf
    return value
