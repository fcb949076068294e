"""Fine-tuning by recipe: sources (official .pth, Hugging Face directory), multi-view testing, the
labels and heads it refuses."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "interop"))
from interop_reference import GEO, finetuned_state, run_args  # noqa: E402

from adamae_rl.data.make_synthetic import write_split  # noqa: E402
from adamae_rl.data.video import SamplingOptions, VideoClips, read_video_list  # noqa: E402
from adamae_rl.data.views import MultiViewClips, ViewSpec  # noqa: E402
from adamae_rl.evaluation.data import labelled_splits  # noqa: E402
from adamae_rl.evaluation.finetuning import RECIPES, AugmentedClips, FinetuneSettings, _collate  # noqa: E402
from adamae_rl.evaluation.run_eval import EvalOptions, evaluate_run  # noqa: E402
from adamae_rl.evaluation.testing import aggregate_views, multi_view_scores  # noqa: E402
from adamae_rl.geometry import ClipGeometry  # noqa: E402
from adamae_rl.interop import load_classifier  # noqa: E402
from adamae_rl.data.loader import ResumableSampler  # noqa: E402

GEOMETRY = ClipGeometry(num_frames=GEO["num_frames"], img_size=GEO["img_size"], patch_size=GEO["patch_size"],
                        tubelet_size=GEO["tubelet_size"])
ONE_STEP = FinetuneSettings(steps=1, batch_size=4, lr=0.0, warmup_steps=0, label_smoothing=0.1)


@pytest.fixture(scope="module")
def lists(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """Labelled mp4 lists of moving shapes (8 direction classes), 12 frames of 32 px."""
    folder = tmp_path_factory.mktemp("lists")
    return (write_split(folder, "train", 8, seed=0, frames=12, size=32, max_shapes=1),
            write_split(folder, "val", 5, seed=10_000, frames=12, size=32, max_shapes=1))


@pytest.fixture(scope="module")
def official_finetuned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An official fine-tuned VideoMAE .pth (ViT-S names, 8 classes) with its run args."""
    path = tmp_path_factory.mktemp("official") / "finetuned.pth"
    args = run_args()
    args.model = "vit_small_patch8_32"
    torch.save({"model": finetuned_state(torch.Generator().manual_seed(0), num_classes=8), "args": args}, path)
    return path


def first_batch(train_list: Path, settings: FinetuneSettings) -> dict[str, torch.Tensor]:
    """Fine-tuning's first batch (``video``, ``label``), drawn here as the fine-tuning loop draws it."""
    train, _ = labelled_splits({"name": "video"}, GEOMETRY, 0, None, None, str(train_list), str(train_list))
    sampler = ResumableSampler(len(train), seed=settings.seed, shuffle=True, per_rank=settings.batch_size)
    return next(iter(DataLoader(AugmentedClips(train, settings), batch_size=settings.batch_size, sampler=sampler,
                                collate_fn=_collate)))


def first_batch_loss(classifier: torch.nn.Module, train_list: Path, settings: FinetuneSettings) -> float:
    """The loss of ``classifier`` on fine-tuning's first batch, computed here from the source model."""
    batch = first_batch(train_list, settings)
    with torch.no_grad():
        logits = classifier.eval()(batch["video"])
    return float(F.cross_entropy(logits, batch["label"], label_smoothing=settings.label_smoothing))


def test_fine_tuning_an_official_pth_starts_from_its_weights(official_finetuned: Path, lists, tmp_path: Path) -> None:
    train_list, val_list = lists
    options = EvalOptions(protocols=("finetune",), train_list=str(train_list), val_list=str(val_list), train_clips=None,
                          val_clips=None, progress=False, finetune=ONE_STEP, run_dir=tmp_path / "ft")
    report = evaluate_run(official_finetuned, options)
    logged = [line for line in (tmp_path / "ft" / "pretrained" / "metrics.jsonl").read_text().splitlines() if "finetune/loss" in line]
    import json

    step_one = json.loads(logged[0])
    expected = first_batch_loss(load_classifier(official_finetuned), train_list, ONE_STEP)
    assert step_one["step"] == 1 and step_one["finetune/loss"] == pytest.approx(expected, rel=1e-5)
    assert report["num_classes"] == 8 and (tmp_path / "ft" / "eval.json").exists()


def test_fine_tuning_a_hugging_face_directory_starts_from_its_weights(lists, tmp_path: Path) -> None:
    transformers = pytest.importorskip("transformers")
    train_list, val_list = lists
    config = transformers.VideoMAEConfig(
        image_size=32, patch_size=8, num_frames=GEO["num_frames"], tubelet_size=2, hidden_size=48, num_hidden_layers=2,
        num_attention_heads=6, intermediate_size=192, use_mean_pooling=True, num_labels=8, layer_norm_eps=1e-6,
    )
    torch.manual_seed(0)
    hf = transformers.VideoMAEForVideoClassification(config).eval()
    with torch.no_grad():
        for param in hf.parameters():
            param.add_(0.05 * torch.randn_like(param))
    hf.save_pretrained(tmp_path / "hf")
    options = EvalOptions(protocols=("finetune",), train_list=str(train_list), val_list=str(val_list), train_clips=None,
                          val_clips=None, progress=False, finetune=ONE_STEP, run_dir=tmp_path / "ft")
    evaluate_run(tmp_path / "hf", options)
    import json

    step_one = json.loads((tmp_path / "ft" / "pretrained" / "metrics.jsonl").read_text().splitlines()[0])
    # The source's own loss on that batch: transformers' model on the same clips.
    batch = first_batch(train_list, ONE_STEP)
    with torch.no_grad():
        logits = hf(pixel_values=batch["video"].transpose(1, 2)).logits
    expected = float(F.cross_entropy(logits, batch["label"], label_smoothing=0.1))
    assert step_one["finetune/loss"] == pytest.approx(expected, rel=1e-4)


def test_multi_view_scores_are_the_mean_of_single_views(official_finetuned: Path, lists) -> None:
    _, val_list = lists
    classifier = load_classifier(official_finetuned).eval()
    clips = VideoClips(read_video_list(val_list), GEOMETRY, SamplingOptions(sampling_rate=2), train=False)
    views = MultiViewClips(clips, ViewSpec(2, 3))
    for how in ("softmax", "logits"):
        scores, labels = multi_view_scores(classifier, views, batch_size=2, device=torch.device("cpu"), how=how)
        for index in range(len(views)):
            item = views[index]
            with torch.no_grad():
                one_by_one = [classifier(item["video"][v:v + 1]) for v in range(6)]
            per_view = [o.softmax(-1) if how == "softmax" else o for o in one_by_one]
            torch.testing.assert_close(scores[index], torch.cat(per_view).mean(0), rtol=1e-5, atol=1e-6)
            assert int(labels[index]) == int(item["label"])
    assert torch.allclose(aggregate_views(torch.zeros(1, 3, 4)), torch.full((1, 4), 0.25))


def test_a_head_that_does_not_fit_is_refused_unless_reset(official_finetuned: Path, lists, tmp_path: Path) -> None:
    train_list, val_list = lists
    quick = dict(protocols=("finetune",), train_list=str(train_list), val_list=str(val_list), train_clips=None,
                 val_clips=None, progress=False, finetune=ONE_STEP)
    with pytest.raises(ValueError, match="head has 8 classes, the labels 10: pass --reset-head"):
        evaluate_run(official_finetuned, EvalOptions(num_classes=10, **quick), tmp_path / "a.json")
    report = evaluate_run(official_finetuned, EvalOptions(num_classes=10, reset_head=True, **quick), tmp_path / "b.json")
    assert report["num_classes"] == 10


def test_a_label_outside_the_class_count_is_named(official_finetuned: Path, lists, tmp_path: Path) -> None:
    train_list, val_list = lists
    bad = tmp_path / "bad.txt"
    lines = train_list.read_text().splitlines()
    bad.write_text("\n".join(lines[:-1] + [lines[-1].split()[0] + " 9"]) + "\n")
    with pytest.raises(ValueError, match=r"label 9 is outside the 8 classes \(0..7\)"):
        evaluate_run(official_finetuned, EvalOptions(protocols=("finetune",), train_list=str(bad), val_list=str(val_list),
                                                     num_classes=8, train_clips=None, val_clips=None, progress=False,
                                                     finetune=ONE_STEP), tmp_path / "c.json")


def test_recipes_hold_videomae_settings() -> None:
    ssv2, k400 = RECIPES["ssv2_vit_b"], RECIPES["k400_vit_b"]
    for recipe in (ssv2, k400):
        assert (recipe.layer_decay, recipe.drop_path, recipe.mixup, recipe.cutmix, recipe.label_smoothing) == (0.75, 0.1, 0.8, 1.0, 0.1)
        assert (recipe.randaug_ops, recipe.randaug_magnitude, recipe.reprob, recipe.warmup_epochs) == (4, 7, 0.25, 5)
    assert (ssv2.epochs, ssv2.blr, ssv2.test_views, ssv2.flip) == (50, 5e-4, "2x3", False)
    assert (k400.epochs, k400.blr, k400.test_views, k400.flip) == (100, 1e-3, "5x3", True)
    with pytest.raises(ValueError, match="at least 1 temporal"):
        FinetuneSettings(test_views="0x3")
    assert np.isclose(ssv2.peak_lr(512), 1e-3)  # 5e-4 x 512 / 256


class Interrupted(Exception):
    pass


def test_an_interrupted_fine_tuning_resumes_exactly(official_finetuned: Path, lists) -> None:
    """A run stopped after its step-2 checkpoint and resumed from it ends on the weights and scores
    of the uninterrupted run (augmentation and Mixup/CutMix draws are functions of the step)."""
    from adamae_rl.evaluation.finetuning import finetune

    train_list, val_list = lists
    train, val = labelled_splits({"name": "video"}, GEOMETRY, 0, None, None, str(train_list), str(val_list))
    settings = FinetuneSettings(steps=4, batch_size=4, lr=1e-3, warmup_steps=1, mixup=0.8, cutmix=1.0, randaug_ops=2,
                                reprob=0.25, crop="resized", drop_path=0.1)
    cpu = torch.device("cpu")
    whole_model = load_classifier(official_finetuned)
    torch.manual_seed(0)
    whole = finetune(whole_model, train, val, settings, cpu, progress=False)

    saved = {}

    def stop_at_two(state: dict) -> None:
        saved.update(state)
        if state["step"] == 2:
            raise Interrupted

    interrupted_model = load_classifier(official_finetuned)
    torch.manual_seed(0)  # as for the whole run: drop path draws from torch's generator
    with pytest.raises(Interrupted):
        finetune(interrupted_model, train, val, settings, cpu, progress=False,
                 on_checkpoint=stop_at_two, ckpt_every=2)
    resumed_model = load_classifier(official_finetuned)
    torch.manual_seed(123)  # another state: the checkpoint's comes back
    resumed = finetune(resumed_model, train, val, settings, cpu, progress=False, resume=dict(saved))
    assert resumed["steps"] == 4 and (resumed["top1"], resumed["top5"]) == (whole["top1"], whole["top5"])
    a, b = whole_model.state_dict(), resumed_model.state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_model_ema_is_scored_next_to_the_raw_weights(official_finetuned: Path, lists) -> None:
    from adamae_rl.evaluation.finetuning import finetune

    train_list, val_list = lists
    train, val = labelled_splits({"name": "video"}, GEOMETRY, 0, None, None, str(train_list), str(val_list))
    settings = FinetuneSettings(steps=3, batch_size=4, lr=1e-2, warmup_steps=0, ema_decay=0.5)
    model = load_classifier(official_finetuned)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    result = finetune(model, train, val, settings, torch.device("cpu"), progress=False)
    assert {"top1", "top5", "raw_top1", "raw_top5"} <= set(result)
    assert any(not torch.equal(before[k], v) for k, v in model.state_dict().items())  # the raw weights trained
