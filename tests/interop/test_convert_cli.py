"""``python -m adamae_rl.convert``: format inference, forced formats, geometry options, errors."""

from __future__ import annotations

import pytest
import torch
from helpers_cli import run_cli
from interop_reference import pretrain_state, run_args

from adamae_rl.convert import main
from adamae_rl.interop import build_model, read_weights


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
