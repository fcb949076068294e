"""``python -m adamae_rl.convert``: format inference, forced formats, geometry options, errors."""

from __future__ import annotations

import json

import pytest
import torch
from helpers_cli import run_cli
from interop_reference import pretrain_state, run_args

from adamae_rl.convert import main
from adamae_rl.interop import build_model, read_weights
from adamae_rl.interop.weights import WeightsError


def test_help_shows_an_example(capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["--help"])
    assert exit_info.value.code == 0
    out = capsys.readouterr().out
    assert "python -m adamae_rl.convert checkpoint-799.pth videomae_b.pt" in out
    assert "--from" in out and "--to" in out


def test_official_to_adamae_rl_to_hf_and_back(tmp_path, capsys):
    gen = torch.Generator().manual_seed(0)
    torch.save({"model": pretrain_state(gen, sampler=True), "args": run_args()}, tmp_path / "adamae.pth")
    main([str(tmp_path / "adamae.pth"), str(tmp_path / "adamae.pt")])  # .pt -> this toolkit's file
    assert "wrote" in capsys.readouterr().out
    main([str(tmp_path / "adamae.pt"), str(tmp_path / "hf")])  # no suffix -> Hugging Face directory
    assert (tmp_path / "hf" / "config.json").is_file() and (tmp_path / "hf" / "adamae_rl_sampler.safetensors").is_file()
    main([str(tmp_path / "hf"), str(tmp_path / "back.pth"), "--from", "hf", "--to", "adamae_rl"])

    first, back = read_weights(tmp_path / "adamae.pt"), read_weights(tmp_path / "back.pth")
    assert back.config == first.config
    for name in ("model", "policy"):
        ours, theirs = getattr(first, name), getattr(back, name)
        assert ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


def test_missing_geometry_and_existing_target(tmp_path, capsys):
    gen = torch.Generator().manual_seed(1)
    torch.save(pretrain_state(gen), tmp_path / "bare.pth")  # no args: heads and clip size unknown
    with pytest.raises(SystemExit) as exit_info:
        main([str(tmp_path / "bare.pth"), str(tmp_path / "hf")])
    assert exit_info.value.code == 2
    assert "does not tell img_size, num_frames, num_heads, decoder_num_heads" in capsys.readouterr().err
    main([str(tmp_path / "bare.pth"), str(tmp_path / "hf"), "--img-size", "32", "--num-frames", "4",
          "--num-heads", "6", "--decoder-num-heads", "3"])
    assert build_model(read_weights(tmp_path / "hf")).cfg.num_heads == 6
    with pytest.raises(SystemExit):
        main([str(tmp_path / "bare.pth"), str(tmp_path / "hf")])
    assert "exists; pass --force" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_subprocess(tmp_path):
    gen = torch.Generator().manual_seed(2)
    torch.save({"model": pretrain_state(gen), "args": run_args()}, tmp_path / "videomae.pth")
    out = run_cli("adamae_rl.convert", "videomae.pth", "videomae.pt", cwd=tmp_path, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "wrote videomae.pt (adamae_rl)" in out.stdout and "checkpoint videomae.pth" in out.stdout


def _export(tmp_path, seed: int, sampler: bool, name: str):
    gen = torch.Generator().manual_seed(seed)
    torch.save({"model": pretrain_state(gen, sampler=sampler), "args": run_args()}, tmp_path / f"{name}.pth")
    return tmp_path / f"{name}.pth"


def test_force_over_an_earlier_export_leaves_no_stale_sampler(tmp_path, capsys):
    with_sampler, plain = _export(tmp_path, 3, True, "adamae"), _export(tmp_path, 4, False, "videomae")
    main([str(with_sampler), str(tmp_path / "hf")])
    assert (tmp_path / "hf" / "adamae_rl_sampler.safetensors").is_file()
    main([str(plain), str(tmp_path / "hf"), "--force"])
    assert not (tmp_path / "hf" / "adamae_rl_sampler.safetensors").exists()
    assert not (tmp_path / "hf" / "adamae_rl.json").exists()
    assert read_weights(tmp_path / "hf").policy is None  # init_from finds no sampler of another model


def test_force_never_deletes_foreign_files_or_its_source(tmp_path, capsys):
    src = _export(tmp_path, 5, False, "videomae")
    main([str(src), str(tmp_path / "hf")])
    (tmp_path / "hf" / "README.md").write_text("notes")
    main([str(src), str(tmp_path / "hf"), "--force"])
    assert (tmp_path / "hf" / "README.md").read_text() == "notes"  # not an export's file
    capsys.readouterr()
    with pytest.raises(SystemExit) as exit_info:  # a folder into itself: --force would delete the source
        main([str(tmp_path / "hf"), str(tmp_path / "hf"), "--force", "--to", "hf"])
    assert exit_info.value.code == 2 and "is (or holds) the source" in capsys.readouterr().err
    assert (tmp_path / "hf" / "model.safetensors").is_file()


def test_reads_only_the_files_hugging_face_names(tmp_path):
    from safetensors.torch import load_file, save_file

    main([str(_export(tmp_path, 6, False, "a")), str(tmp_path / "hf")])
    main([str(_export(tmp_path, 7, False, "b")), str(tmp_path / "other")])
    want = read_weights(tmp_path / "hf").model
    # a backup of other weights next to the real file: sorted after model.safetensors, it used to win
    (tmp_path / "other" / "model.safetensors").rename(tmp_path / "hf" / "model_backup.safetensors")
    got = read_weights(tmp_path / "hf").model
    assert all(torch.equal(want[k], got[k]) for k in want)
    # a sharded folder: exactly the index's shards
    state = load_file(str(tmp_path / "hf" / "model.safetensors"))
    keys = sorted(state)
    half = len(keys) // 2
    save_file({k: state[k] for k in keys[:half]}, str(tmp_path / "hf" / "model-00001-of-00002.safetensors"))
    save_file({k: state[k] for k in keys[half:]}, str(tmp_path / "hf" / "model-00002-of-00002.safetensors"))
    index = {"weight_map": {k: f"model-0000{1 + (i >= half)}-of-00002.safetensors" for i, k in enumerate(keys)}}
    (tmp_path / "hf" / "model.safetensors").unlink()
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps(index))
    got = read_weights(tmp_path / "hf").model
    assert all(torch.equal(want[k], got[k]) for k in want)
    index["weight_map"][keys[0]] = "../escape.safetensors"
    (tmp_path / "hf" / "model.safetensors.index.json").write_text(json.dumps(index))
    with pytest.raises(WeightsError, match="not a file name inside"):
        read_weights(tmp_path / "hf")
