"""``python -m adamae_rl.visualize``: PNG sheets and GIFs for adaptive and heuristic policies."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers_cli import run_cli, smoke_run
from helpers_memory import run_limited
from PIL import Image

from adamae_rl.api import geometry_of
from adamae_rl.builders import load_run
from adamae_rl.data.transforms import denormalize
from adamae_rl.errors import OutputError
from adamae_rl.visualization.render import predictions_to_pixels, render, tokens_to_pixels, unpatchify
from adamae_rl.models.presets import build_mae
from adamae_rl.visualize import held_out_clips, visualize


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("vis")
    return {p: smoke_run(root / p, f"policy={p}") for p in ("adaptive", "random")}


@pytest.mark.parametrize("policy", ["adaptive", "random"])
def test_visualize_writes_png_and_gif(runs: dict[str, Path], tmp_path: Path, policy: str) -> None:
    written = visualize(runs[policy], clips=2, out=tmp_path)
    names = sorted(p.name for p in written)
    assert names == ["clip_0.gif", "clip_0.png", "clip_1.gif", "clip_1.png", "overview.png"]
    with Image.open(tmp_path / "clip_0.gif") as gif:
        assert gif.n_frames == 8  # one GIF frame per video frame of the smoke clips
    with Image.open(tmp_path / "clip_0.png") as png:
        assert png.size[0] > 300 and png.size[1] > 300


def test_rendering_contents(runs: dict[str, Path]) -> None:
    """Visible pixels are the input, probabilities are a distribution (adaptive) or absent."""
    for policy, has_probability in (("adaptive", True), ("random", False)):
        cfg, model, pol, _ = load_run(runs[policy])
        batch = held_out_clips(cfg, geometry_of(model), 2)
        torch.manual_seed(0)
        r = render(model, pol, batch["video"], batch.get("fg_tokens"))
        visible = ~tokens_to_pixels(r.mask.float(), model).bool().unsqueeze(1).expand_as(r.input)
        torch.testing.assert_close(r.reconstruction[visible], r.input[visible])
        assert float(r.error.min()) >= 0 and (r.probability is not None) == has_probability
        if has_probability:
            torch.testing.assert_close(r.probability.sum(-1), torch.ones(2))


@pytest.mark.parametrize("policy", ["motion", "embedding_change", "loss_predictor"])
def test_score_column_shows_the_policy_scores(policy: str) -> None:
    """Policies without logits that write ``scores`` fill the score column with them."""
    import adamae_rl
    from adamae_rl.visualization.render import observe

    env = adamae_rl.make_env(model="tiny", batch_size=2, mask_ratio=0.75, img_size=32, num_frames=8)
    pol = adamae_rl.make_policy(policy, env=env)
    video = env.reset().get("video")
    torch.manual_seed(0)
    r = render(env.model, pol, video)
    scores = pol(observe(env.model, video)).get("scores").float()
    assert r.probability is not None and r.probability.shape == (2, env.num_tokens)
    assert (r.probability >= 0).all()
    torch.testing.assert_close(r.probability - r.probability.min(-1, keepdim=True).values,
                               scores - scores.min(-1, keepdim=True).values)


def test_unpatchify_inverts_patchify() -> None:
    mae = build_mae("tiny", img_size=32, num_frames=8)
    video = torch.randn(2, 3, 8, 32, 32)
    torch.testing.assert_close(unpatchify(mae.patchify(video), mae), video)


def test_normalized_targets_are_unnormalized_with_the_true_patch_statistics() -> None:
    """A perfect normalized-target prediction renders back to the input's pixels."""
    mae = build_mae("tiny", img_size=32, num_frames=8, norm_target=True)
    video = torch.randn(1, 3, 8, 32, 32)
    mask = torch.zeros(1, 64, dtype=torch.bool)
    mask[0, :48] = True
    pixels = mae.patchify(denormalize(video))
    perfect = mae.targets(video)[mask].reshape(1, 48, -1)
    torch.testing.assert_close(predictions_to_pixels(perfect, pixels, mask, mae), pixels[mask].reshape(1, 48, -1),
                               atol=1e-4, rtol=1e-4)


@pytest.mark.slow
def test_cli(runs: dict[str, Path], tmp_path: Path) -> None:
    result = run_cli("adamae_rl.visualize", str(runs["random"]), "--clips", "1", "--out", str(tmp_path / "v"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert (tmp_path / "v" / "clip_0.gif").is_file() and (tmp_path / "v" / "overview.png").is_file()
    bad = run_cli("adamae_rl.visualize", str(runs["random"]), "--clips", "0", cwd=tmp_path)
    assert bad.returncode == 2 and "error: --clips must be in 1..64 (clips are rendered as one batch), got 0" in bad.stderr


def test_clips_are_bounded_under_a_memory_limit(runs: dict[str, Path]) -> None:
    # --clips 100000 used to render every clip in one batch until the kernel killed it (24 GB).
    result = run_limited(f"""
        from adamae_rl.visualize import visualize
        limit_memory(300)
        try:
            visualize({str(runs["random"])!r}, clips=100000, out={str(runs["random"] / "v")!r})
        except Exception as err:
            print(type(err).__name__, err)
    """)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.strip() == "ConfigError --clips must be in 1..64 (clips are rendered as one batch), got 100000"


def test_never_overwrites_foreign_files(runs: dict[str, Path], tmp_path: Path) -> None:
    (tmp_path / "overview.png").write_bytes(b"my figure")
    with pytest.raises(OutputError, match="overview.png exists and was not written by visualize"):
        visualize(runs["random"], clips=1, out=tmp_path)
    assert (tmp_path / "overview.png").read_bytes() == b"my figure"
    with pytest.raises(OutputError, match="holds the input"):
        visualize(runs["random"], clips=1, out=runs["random"])  # the run's checkpoints are the input
    visualize(runs["random"], clips=1, out=tmp_path, force=True)
    assert (tmp_path / "overview.png").read_bytes()[:4] == b"\x89PNG"
    visualize(runs["random"], clips=1, out=tmp_path)  # its own files: rewritten without --force
