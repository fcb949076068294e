"""Metric logging: metrics.jsonl, TensorBoard (scalars, hyper-parameters, figures), Weights & Biases."""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest

from adamae_rl.errors import ConfigError
from adamae_rl.utils.logs import MetricLog, check_logger, flatten_config


def _events(folder: Path):
    from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer

    mux = EventMultiplexer()
    mux.AddRunsFromDirectory(str(folder))
    mux.Reload()
    return mux


def _session(mux):
    """The hyper-parameters of the run's HParams entry (TensorBoard's session start info)."""
    from tensorboard.plugins.hparams import plugin_data_pb2

    for content in mux.PluginRunToTagToContent("hparams")["."].values():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        if data.HasField("session_start_info"):
            return data.session_start_info
    raise AssertionError("no hparams entry")


def _figure():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 2))
    ax.imshow([[0, 1], [1, 0]])
    return fig


def test_flatten_config_gives_dotted_scalar_keys() -> None:
    cfg = {"trainer": {"batch_size": 16, "device": "auto", "resume": None}, "optim": {"betas": [0.9, 0.95]},
           "mask_ratio": 0.9, "token_grad": False, "policy": {"name": "adaptive", "nested": {"deep": 1}}}
    assert flatten_config(cfg) == {
        "trainer.batch_size": 16, "trainer.device": "auto", "trainer.resume": "null", "optim.betas": "[0.9, 0.95]",
        "mask_ratio": 0.9, "token_grad": False, "policy.name": "adaptive", "policy.nested.deep": 1,
    }


def test_tensorboard_gets_hparams_scalars_and_figures(tmp_path: Path) -> None:
    log = MetricLog(tmp_path, tensorboard=True, logger={"name": "tensorboard"})
    assert log.wants_figures
    log.log(10, {"train/loss_recon": 0.5, "note": "text"})
    log.log_figure("eval/masks", _figure(), 10)
    log.log_hparams({"trainer.batch_size": 16, "policy.name": "adaptive", "optim.betas": [0.9, 0.95]},
                    {"eval/loss_recon": 0.25, "eval/fg_enrichment": float("nan"), "label": "x"})
    log.close()
    mux = _events(tmp_path / "tb")
    runs = mux.Runs()
    assert list(runs) == ["."]  # the table entry joins the run's folder, no timestamped subfolder
    tags = runs["."]
    assert "train/loss_recon" in tags["scalars"] and "eval/masks" in tags["images"]
    # the final metric has its own tag; the non-finite and non-numeric ones are left out
    assert [e.value for e in mux.Scalars(".", "hparam/eval/loss_recon")] == [0.25]
    assert not any("fg_enrichment" in t or "label" in t for t in tags["scalars"])
    session = _session(mux)
    assert session.hparams["trainer.batch_size"].number_value == 16
    assert session.hparams["policy.name"].string_value == "adaptive"
    assert session.hparams["optim.betas"].string_value == "[0.9, 0.95]"
    assert json.loads((tmp_path / "metrics.jsonl").read_text().splitlines()[0])["train/loss_recon"] == 0.5


@pytest.mark.parametrize(("tensorboard", "logger"), [(True, {"name": "none"}), (False, {"name": "tensorboard"})])
def test_no_events_without_tensorboard(tmp_path: Path, tensorboard: bool, logger: dict) -> None:
    log = MetricLog(tmp_path, tensorboard=tensorboard, logger=logger)
    assert not log.wants_figures
    log.log(1, {"a": 1.0})
    log.log_hparams({"x": 1}, {"a": 1.0})
    log.log_figure("f", _figure(), 1)  # goes nowhere, and closes the figure
    log.close()
    assert not (tmp_path / "tb").exists() and (tmp_path / "metrics.jsonl").read_text().count("\n") == 1
    import matplotlib.pyplot as plt

    assert plt.get_fignums() == []


def test_wandb_missing_is_one_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "wandb", None)  # import wandb raises ImportError
    with pytest.raises(ConfigError, match=r"logger=wandb needs the wandb package: pip install 'adamae_rl\[wandb\]'"):
        check_logger({"name": "wandb"})
    with pytest.raises(ConfigError, match="needs the wandb package"):
        MetricLog(tmp_path, logger={"name": "wandb"})
    check_logger({"name": "tensorboard"}), check_logger({"name": "none"}), check_logger(None)  # need nothing


class _FakeRun:
    def __init__(self, **kwargs) -> None:
        self.init = kwargs
        self.logged: list[tuple[dict, int]] = []
        self.config = types.SimpleNamespace(values={}, update=lambda d, allow_val_change=False: self.config.values.update(d))
        self.summary: dict = {}
        self.finished = False

    def log(self, values: dict, step: int) -> None:
        self.logged.append((values, step))

    def finish(self) -> None:
        self.finished = True


def _fake_wandb(runs: list) -> types.ModuleType:
    fake = types.ModuleType("wandb")
    fake.Image = lambda fig: ("image", fig.get_size_inches().tolist())

    def init(**kwargs):
        runs.append(_FakeRun(**kwargs))
        return runs[-1]

    fake.init = init
    return fake


def test_wandb_gets_scalars_hparams_figures_and_resumes_the_same_run(monkeypatch: pytest.MonkeyPatch,
                                                                      tmp_path: Path) -> None:
    runs: list[_FakeRun] = []
    monkeypatch.setitem(sys.modules, "wandb", _fake_wandb(runs))
    logger = {"name": "wandb", "project": "p", "entity": "e", "mode": "offline"}
    log = MetricLog(tmp_path / "run", tensorboard=True, logger=logger)  # wandb instead of TensorBoard
    log.log(5, {"train/loss": 0.5, "note": "text"})
    log.log_figure("eval/masks", _figure(), 5)
    log.log_hparams({"trainer.batch_size": 16, "trainer.resume": None}, {"eval/loss_recon": 0.2})
    log.close()
    run = runs[0]
    run_id = (tmp_path / "run" / "wandb_id.txt").read_text().strip()
    assert len(run_id) == 8
    assert run.init == {"project": "p", "entity": "e", "mode": "offline", "dir": str(tmp_path / "run"), "name": "run",
                        "id": run_id, "resume": "allow"}
    assert run.logged == [({"train/loss": 0.5}, 5), ({"eval/masks": ("image", [2.0, 2.0])}, 5)]
    assert run.config.values == {"trainer.batch_size": 16, "trainer.resume": "null"}
    assert run.summary == {"eval/loss_recon": 0.2} and run.finished
    assert not (tmp_path / "run" / "tb").exists()
    # a resumed training continues the same W&B run; a fresh start in the same folder begins another
    MetricLog(tmp_path / "run", resume_step=5, logger=logger).close()
    MetricLog(tmp_path / "run", logger=logger).close()
    ids = [r.init["id"] for r in runs]
    assert ids[:2] == [run_id, run_id] and ids[2] != run_id


def test_wandb_offline_writes_its_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT"):
        monkeypatch.delenv(key, raising=False)
    log = MetricLog(tmp_path, logger={"name": "wandb", "project": "adamae-test", "mode": "offline"})
    log.log(1, {"train/loss": 1.0})
    log.log_hparams({"trainer.batch_size": 4}, {"eval/loss_recon": 0.3})
    log.close()
    runs = list((tmp_path / "wandb").glob("offline-run-*"))
    assert len(runs) == 1 and runs[0].name.endswith((tmp_path / "wandb_id.txt").read_text().strip())
    assert list(runs[0].glob("*.wandb"))  # the run's records, to upload with wandb sync


# --------------------------------------------------------------------------------------------------
# Through a training run
# --------------------------------------------------------------------------------------------------
def _losses(run_dir: Path) -> list[float]:
    return [r["train/loss_recon"] for r in map(json.loads, (run_dir / "metrics.jsonl").read_text().splitlines())
            if "train/loss_recon" in r]


def test_training_logs_mask_figures_and_hparams_without_changing_the_run(tmp_path: Path) -> None:
    from helpers_cli import smoke_run

    quiet = smoke_run(tmp_path / "quiet", "policy=adaptive", "trainer.tensorboard=false")
    logged = smoke_run(tmp_path / "logged", "policy=adaptive", "trainer.tensorboard=true")
    assert not (quiet / "tb").exists()
    # drawing the figures (their own mask draws and clips) leaves the training trajectory alone
    assert _losses(logged) == _losses(quiet) and len(_losses(quiet)) == 6
    mux = _events(logged / "tb")
    images = mux.Images(".", "eval/masks")
    assert [e.step for e in images] == [6, 12]  # at every evaluation (eval_every 6 of 12 steps)
    final = json.loads((logged / "summary.json").read_text())["final_loss_recon"]
    assert [e.value for e in mux.Scalars(".", "hparam/eval/loss_recon")] == [pytest.approx(final)]
    hparams = _session(mux).hparams
    assert hparams["policy.name"].string_value == "adaptive" and hparams["trainer.max_steps"].number_value == 12


def test_training_with_wandb_offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    from helpers_cli import smoke_run

    monkeypatch.setenv("WANDB_SILENT", "true")
    for key in ("WANDB_API_KEY", "WANDB_ENTITY", "WANDB_PROJECT", "WANDB_MODE"):
        monkeypatch.delenv(key, raising=False)
    run = smoke_run(tmp_path / "w", "policy=random", "logger=wandb", "logger.mode=offline")
    assert not (run / "tb").exists()
    offline = list((run / "wandb").glob("offline-run-*"))
    assert len(offline) == 1 and offline[0].name.endswith((run / "wandb_id.txt").read_text().strip())


def test_logger_none_and_the_schema(tmp_path: Path) -> None:
    from helpers_cli import smoke_config, smoke_run

    from adamae_rl.schema import resumable_keys, stored_config, validate_config
    from adamae_rl.training.state import config_diff

    cfg = smoke_config()
    assert cfg["logger"] == {"name": "tensorboard"}
    with pytest.raises(ConfigError, match="logger.name: input should be 'tensorboard', 'wandb' or 'none'"):
        validate_config({**cfg, "logger": {"name": "mlflow"}})
    with pytest.raises(ConfigError, match="logger.mode: input should be 'online', 'offline' or 'disabled'"):
        validate_config({**cfg, "logger": {"name": "wandb", "mode": "sometimes"}})
    # a checkpoint written before the section existed resumes under today's config
    stored = {k: v for k, v in cfg.items() if k != "logger"}
    assert not config_diff(stored_config(stored), validate_config(cfg).as_dict()) - resumable_keys()
    # and one that logged elsewhere resumes with another logger
    other = validate_config({**cfg, "logger": {"name": "wandb", "mode": "offline"}}).as_dict()
    assert config_diff(stored_config(other), validate_config(cfg).as_dict()) - resumable_keys() == set()
    run = smoke_run(tmp_path / "n", "policy=random", "logger=none", "trainer.tensorboard=true")
    assert not (run / "tb").exists() and not (run / "wandb").exists() and (run / "metrics.jsonl").is_file()


def test_train_without_wandb_refuses_before_creating_the_run_dir(tmp_path: Path) -> None:
    import subprocess

    from helpers_cli import cli_env

    code = ("import sys; sys.modules['wandb'] = None; "  # as if wandb were not installed
            f"sys.argv = ['train', 'experiment=smoke', 'logger=wandb', 'run_dir={tmp_path / 'r'}']; "
            "from adamae_rl.train import main; main()")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=cli_env(), timeout=300,
                            cwd=tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        "error: logger=wandb needs the wandb package: pip install 'adamae_rl[wandb]' (or pip install wandb); "
        "logger=tensorboard and logger=none need nothing more")
    assert not (tmp_path / "r").exists()
