"""``python -m adamae_rl.bench``: records, table, and one readable line for bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from adamae_rl import bench
from adamae_rl.builders import resolve_precision
from adamae_rl.utils import compile as compile_module

# The demo configuration shrunk to seconds: 8 frames of 32², 64 tokens, batch 2.
SMALL = ["model.img_size=32", "model.num_frames=8", "trainer.batch_size=2"]
RECORD_KEYS = {
    "config", "precision", "compile", "compiled", "device", "step_s", "clips_per_s", "flops_per_step",
    "attention_flops_per_step", "achieved_flops", "peak_flops", "mfu", "peak_memory_mib", "peak_memory_kind",
    "phases_ms", "batch_size", "mask_ratio", "policy", "model",
}


def test_one_configuration_writes_a_json_line_and_a_table(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "bench.jsonl"
    code = bench.main(["tiny", *SMALL, "mask_ratio=0.75", "--steps", "2", "--warmup", "0", "--threads", "1", "--json", str(out)])
    assert code == 0
    (line,) = out.read_text().splitlines()
    record = json.loads(line)
    assert RECORD_KEYS <= set(record)
    # tiny's precision is the demo's (auto): what the training app runs on this CPU.
    expected = resolve_precision("auto", torch.device("cpu"))
    assert record["config"] == "tiny" and record["precision"] == expected and record["batch_size"] == 2
    assert record["mask_ratio"] == 0.75 and record["policy"] == "adaptive" and record["num_tokens"] == 64
    assert len(record["step_s_all"]) == 2 and record["step_s"] > 0
    # Attention (sampler, encoder, decoder) is counted: it is part of the total, and not all of it.
    assert 0 < record["attention_flops_per_step"] < record["flops_per_step"]
    assert record["mfu"] == pytest.approx(record["flops_per_step"] / record["step_s"] / record["peak_flops"])
    assert set(record["phases_ms"]) == {"reset", "sampler", "mae_forward", "objective", "backward", "optimizer"}
    assert record["peak_memory_kind"] == "peak_rss" and record["peak_memory_mib"] > 0
    table = capsys.readouterr().out
    assert "GFLOP/step" in table and "MFU" in table and table.splitlines()[1].split()[0] == "tiny"


def test_bf16_counts_the_same_flops_as_fp32(tmp_path: Path) -> None:
    """The CPU bf16 attention runs as plain matmuls, fp32 through the flash kernel: equal counts."""
    out = tmp_path / "bench.jsonl"
    for precision in ("fp32", "bf16"):
        assert bench.main(["tiny", *SMALL, "--precision", precision, "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    fp32, bf16 = (json.loads(line) for line in out.read_text().splitlines())
    assert bf16["precision"] == "bf16"
    assert bf16["flops_per_step"] == fp32["flops_per_step"]
    assert bf16["attention_flops_per_step"] == fp32["attention_flops_per_step"]


def test_compile_failure_is_a_warning_and_the_step_runs_eagerly(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    def no_toolchain(fn, *args, **kwargs):
        def fails(*a, **kw):
            raise RuntimeError("no C++ compiler")

        return fails

    monkeypatch.setattr(compile_module.torch, "compile", no_toolchain)
    out = tmp_path / "bench.jsonl"
    with pytest.warns(RuntimeWarning, match="torch.compile is not usable here"):
        assert bench.main(["tiny", *SMALL, "--compile", "on", "--steps", "1", "--warmup", "0", "--json", str(out)]) == 0
    record = json.loads(out.read_text())
    assert record["compile"] is True and record["compiled"] is False


@pytest.mark.parametrize(
    "args, message",
    [
        (["nosuch"], "error: unknown bench configuration 'nosuch'; known: tiny, vit_s_224, vit_s_224_dual, vit_s_224_tube, vit_b_224"),
        (["tiny", "--steps", "0"], "error: --steps must be at least 1, got 0"),
        (["tiny", "policy=nosuch", "--steps", "1"], "error: policy: unknown policy 'nosuch'"),
    ],
)
def test_bad_input_is_one_line(args: list[str], message: str, capsys: pytest.CaptureFixture) -> None:
    assert bench.main([*args, *SMALL]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and err.startswith(message)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the message of a machine without CUDA")
def test_a_device_that_is_not_there_is_one_line(capsys: pytest.CaptureFixture) -> None:
    assert bench.main(["vit_b_224"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == "error: --device=cuda but no CUDA device is available; use --device=cpu"


def test_full_disk_for_json_is_one_line(capsys) -> None:
    from adamae_rl.bench import main

    assert main(["tiny", "--json", "/dev/full", "--steps", "1", "--warmup", "0"]) == 2
    err = capsys.readouterr().err
    assert "error: No space left on device: /dev/full" in err and "Traceback" not in err


def test_data_bench_refuses_a_device_as_list(capsys) -> None:
    from adamae_rl.data.bench import main

    with pytest.raises(SystemExit) as stop:
        main(["/dev/zero"])
    assert stop.value.code == 2 and "error: video list /dev/zero is a device, not a regular file" in capsys.readouterr().err
