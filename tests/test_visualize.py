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
    both = run_cli("adamae_rl.visualize", str(runs["adaptive"]), str(runs["random"]), "--clips", "1", "--out",
                   str(tmp_path / "c"), "--format", "svg", "--panel", "reconstruction", cwd=tmp_path)
    assert both.returncode == 0, both.stderr
    assert both.stdout.split() == [str(tmp_path / "c" / "compare_clip_0.svg")]
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


# --------------------------------------------------------------------------------------------------
# Colour bars, formats, policies side by side, training snapshots
# --------------------------------------------------------------------------------------------------
def _colorbar_axes(fig) -> list:
    """Axes that are colour bars (matplotlib tags them with ``_colorbar``)."""
    return [ax for ax in fig.axes if getattr(ax, "_colorbar", None) is not None]


def test_heat_maps_have_colour_bars_on_their_scale(runs: dict[str, Path]) -> None:
    import matplotlib.pyplot as plt

    from adamae_rl.visualization.figures import clip_sheet_figure, overview_figure

    cfg, model, pol, _ = load_run(runs["adaptive"])
    batch = held_out_clips(cfg, geometry_of(model), 2)
    torch.manual_seed(0)
    r = render(model, pol, batch["video"], batch.get("fg_tokens"))
    sheet = clip_sheet_figure(r, model, 1, "t")
    bars = _colorbar_axes(sheet)
    assert [ax._colorbar.ax.get_ylabel() for ax in bars] == ["squared error", "p(visible)"]
    # each scale runs from 0 to the clip's largest value
    assert bars[0]._colorbar.mappable.norm.vmax == pytest.approx(float(r.error[1].max()))
    assert bars[1]._colorbar.mappable.norm.vmax == pytest.approx(float(r.probability[1].max()))
    overview = overview_figure(r, model, "t")  # one scale shared by both clips
    assert _colorbar_axes(overview)[0]._colorbar.mappable.norm.vmax == pytest.approx(float(r.error.max()))
    plt.close(sheet), plt.close(overview)
    # a policy without scores: only the error map has a bar
    cfg, model, pol, _ = load_run(runs["random"])
    r = render(model, pol, held_out_clips(cfg, geometry_of(model), 1)["video"])
    sheet = clip_sheet_figure(r, model, 0, "t")
    assert [ax._colorbar.ax.get_ylabel() for ax in _colorbar_axes(sheet)] == ["squared error"]
    plt.close(sheet)


def test_sheets_in_every_requested_format(runs: dict[str, Path], tmp_path: Path) -> None:
    from adamae_rl.errors import ConfigError

    written = visualize(runs["random"], clips=1, out=tmp_path, formats="png,pdf,svg")
    assert sorted(p.name for p in written) == ["clip_0.gif", "clip_0.pdf", "clip_0.png", "clip_0.svg",
                                               "overview.pdf", "overview.png", "overview.svg"]
    assert (tmp_path / "overview.pdf").read_bytes()[:5] == b"%PDF-"
    assert "<svg" in (tmp_path / "clip_0.svg").read_text(encoding="utf-8")[:1000]
    with pytest.raises(ConfigError, match="--format takes a comma-separated list of png, pdf, svg; got 'png,jpg'"):
        visualize(runs["random"], clips=1, out=tmp_path, formats="png,jpg")


def test_policies_side_by_side_on_the_same_clips(runs: dict[str, Path], tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    from PIL import Image

    import adamae_rl.visualize as cli

    seen = []
    real = cli.comparison_figure

    def spy(renderings, names, model, b, title, panel="mask"):
        seen.append((renderings, names, panel))
        return real(renderings, names, model, b, title, panel)

    monkeypatch.setattr(cli, "comparison_figure", spy)
    written = cli.compare([runs["adaptive"], runs["random"]], clips=2, out=tmp_path, formats=("png", "pdf"),
                          panel="error")
    assert sorted(p.name for p in written) == ["compare_clip_0.pdf", "compare_clip_0.png", "compare_clip_1.pdf",
                                               "compare_clip_1.png"]
    renderings, names, panel = seen[0]
    assert panel == "error" and [n.split("\n")[0] for n in names] == ["adaptive", "random"]
    torch.testing.assert_close(renderings[0].input, renderings[1].input)  # the same clips for both policies
    assert not torch.equal(renderings[0].mask, renderings[1].mask)
    with Image.open(tmp_path / "compare_clip_0.png") as png:
        assert png.size[0] > png.size[1]  # one row per policy, one column per temporal slice


def test_comparison_figure_layout(runs: dict[str, Path]) -> None:
    import matplotlib.pyplot as plt

    from adamae_rl.visualization.figures import comparison_figure

    cfg, model, pol, _ = load_run(runs["adaptive"])
    video = held_out_clips(cfg, geometry_of(model), 1)["video"]
    rs = []
    for policy in (pol, load_run(runs["random"])[2]):
        torch.manual_seed(0)
        rs.append(render(model, policy, video))
    fig = comparison_figure(rs, ["adaptive", "random"], model, 0, "t", panel="score")
    images = [ax for ax in fig.axes if ax.images and getattr(ax, "_colorbar", None) is None]
    assert len(images) == 2 * model.cfg.grid[0]  # rows = policies, columns = temporal slices
    # score: adaptive has a scale of its own, random has no scores (n/a, no bar)
    assert [ax._colorbar.ax.get_ylabel() for ax in _colorbar_axes(fig)] == ["p(visible)"]
    plt.close(fig)
    with pytest.raises(ValueError, match="panel must be one of mask, reconstruction, error, score"):
        comparison_figure(rs, ["a", "b"], model, 0, "t", panel="loss")


def test_training_snapshot_keeps_the_random_state_and_modes() -> None:
    import adamae_rl
    from adamae_rl.visualization.render import training_snapshot

    env = adamae_rl.make_env(model="tiny", batch_size=3, mask_ratio=0.75, img_size=32, num_frames=8)
    pol = adamae_rl.make_policy("adaptive", env=env)
    env.model.train(), pol.train()
    torch.manual_seed(123)
    state = torch.get_rng_state()
    first = training_snapshot(env.model, pol, env, seed=5, clips=2)
    assert torch.equal(torch.get_rng_state(), state)  # the training's draws are untouched
    assert env.model.training and pol.training
    assert first.input.shape[0] == 2 and first.input.device.type == "cpu" and first.score_label == "p(visible)"
    again = training_snapshot(env.model, pol, env, seed=5, clips=2)
    assert torch.equal(first.mask, again.mask) and torch.equal(first.input, again.input)  # same clips, same draws


def test_a_policy_that_cannot_be_rendered_only_skips_the_figure(caplog: pytest.LogCaptureFixture) -> None:
    import adamae_rl
    from adamae_rl.visualization.figures import training_figure

    env = adamae_rl.make_env(model="tiny", batch_size=2, mask_ratio=0.75, img_size=32, num_frames=8)

    class NeedsLabels(torch.nn.Module):
        def forward(self, td):
            return td["label"]  # a key the rendering's observation does not have

    with caplog.at_level("WARNING", logger="adamae_rl.visualize"):
        assert training_figure(env.model, NeedsLabels(), env, seed=0, title="t") is None
    assert "mask figure skipped: rendering the policy failed (KeyError" in caplog.text
