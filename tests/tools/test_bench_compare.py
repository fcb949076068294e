"""``python -m tools.bench_compare``: another tree's training app timed by this checkout's bench."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest
import torch

from adamae_rl import bench, builders, train
from tools import bench_compare
from tools.bench_compare import ADAPTERS, REPO_ROOT, main, package_copy

SMALL = ["model.img_size=32", "model.num_frames=8", "trainer.batch_size=2"]


@pytest.fixture
def adapters(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    """The adapters, with the bench's own functions behind them (as a run sets them up)."""
    monkeypatch.setattr(bench_compare, "BENCH_OWN", {name: getattr(bench, name) for name in ADAPTERS})
    return SimpleNamespace(**ADAPTERS)


def test_this_app_is_reached_through_the_bench_own_functions(adapters: SimpleNamespace) -> None:
    cpu = torch.device("cpu")
    assert adapters.resolve_precision("auto", cpu) == builders.resolve_precision("auto", cpu)
    cfg = adapters.training_config([*SMALL, "policy=random", "trainer.device=cpu", "trainer.precision=fp32"])
    assert cfg == bench.training_config([*SMALL, "policy=random", "trainer.device=cpu", "trainer.precision=fp32"])
    parts = adapters.build_parts(cfg, cpu)
    assert parts.policy_loss is not None and parts.env.decoder_mask is None
    adapters.train_step(parts, cfg)


def test_an_app_without_auto_precision_or_compile_refuses_them(adapters, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delattr(builders, "resolve_precision")
    monkeypatch.delattr(builders, "compile_run")
    with pytest.raises(bench.BenchError, match="no trainer.precision=auto; use --precision fp32 or bf16"):
        adapters.resolve_precision("auto", torch.device("cpu"))
    assert adapters.resolve_precision("bf16", torch.device("cpu")) == "bf16"
    with pytest.raises(bench.BenchError, match="no trainer.compile option; use --compile off"):
        adapters.compile_parts(object())


def test_earlier_parts_get_the_names_the_bench_reads(adapters, monkeypatch: pytest.MonkeyPatch) -> None:
    objective, policy = torch.nn.Identity(), torch.nn.Identity()
    built = SimpleNamespace(objective=objective, policy=policy, env=SimpleNamespace())
    monkeypatch.delattr(builders, "build_run")
    monkeypatch.setattr(train, "build_parts", lambda cfg, device, proc: built, raising=False)
    parts = adapters.build_parts({}, torch.device("cpu"))
    assert parts.policy_loss is objective and parts.policy_module is policy and parts.env.decoder_mask is None

    calls = []

    def train_step(parts, cfg, precision, device):  # an app whose step also takes the device
        calls.append((precision, device))
        return {}, None, True

    monkeypatch.setattr(train, "train_step", train_step)
    adapters.train_step(parts, {"trainer": {"precision": "bf16", "device": "cpu"}})
    assert calls == [(torch.bfloat16, torch.device("cpu"))]


def test_the_copy_of_another_tree_gets_this_bench(tmp_path: Path) -> None:
    tree = tmp_path / "other"
    (tree / "adamae_rl" / "utils").mkdir(parents=True)
    (tree / "adamae_rl" / "__init__.py").write_text("")
    (tree / "adamae_rl" / "cli.py").write_text("# the tree's own\n")
    (tree / "adamae_rl" / "utils" / "flops.py").write_text("# the tree's own\n")
    package = package_copy(tree, tmp_path / "copy") / "adamae_rl"
    ours = REPO_ROOT / "adamae_rl"
    for name in ("bench.py", "utils/flops.py", "errors.py"):  # the measuring code, and what the tree lacks
        assert (package / name).read_text() == (ours / name).read_text()
    assert (package / "cli.py").read_text() == "# the tree's own\n"
    assert (tree / "adamae_rl" / "utils" / "flops.py").read_text() == "# the tree's own\n"  # the tree is untouched


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert main(["--against", str(tmp_path), "tiny"]) == 2
    assert capsys.readouterr().err.strip() == f"error: --against {tmp_path}: no adamae_rl package there"
    assert main(["--against", str(REPO_ROOT), "--rounds", "0", "tiny"]) == 2
    assert capsys.readouterr().err.strip() == "error: --rounds must be at least 1, got 0"


@pytest.mark.slow
def test_two_trees_alternate_and_the_table_compares_them(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "runs.jsonl"
    argv = ["--against", str(REPO_ROOT), "tiny", *SMALL, "--precision", "fp32", "--steps", "1", "--warmup", "0",
            "--threads", "1", "--rounds", "1", "--json", str(out)]
    assert main(argv) == 0
    records = [json.loads(line) for line in out.read_text().splitlines()]
    assert [r["tree"] for r in records] == ["this", str(REPO_ROOT)]
    assert all(r["config"] == "tiny" and r["precision"] == "fp32" and r["num_tokens"] == 64 for r in records)
    assert records[0]["flops_per_step"] == records[1]["flops_per_step"]  # the same step, counted the same way
    table = capsys.readouterr().out.splitlines()
    assert table[0].split()[-2:] == ["vs", "this"] and table[1].split()[-1] == "1.00x"
