"""The ablation's outputs: one row per cell, a markdown table shaped like the paper's, CSV, plot."""

from __future__ import annotations

import csv
import math
import statistics
from collections.abc import Sequence
from pathlib import Path

from adamae_rl.ablation.runner import Cell, CellRecord, read_json

CSV_FIELDS = (
    "case", "cell", "seed", "status", "policy", "objective", "mask_ratio", "effective_mask_ratio", "protocol", "label",
    "probe_pool", "num_classes", "val_clips",
    "top1", "top5", "random_init_top1", "random_init_top5", "peak_memory_mib", "memory_kind", "step_time_ms",
    "fg_enrichment", "final_loss_recon", "final_loss_recon_reference", "steps", "batch_size", "resumed", "train_wall_s", "eval_wall_s",
)


def cell_row(cell: Cell, record: CellRecord, out: Path) -> dict:
    """Figures of one cell from its summary.json and eval.json (missing ones are None)."""
    run_dir = out / "cells" / cell.name
    summary = read_json(run_dir / "summary.json") or {}
    report = read_json(run_dir / "eval.json") or {}
    primary = report.get("primary")
    rand = report.get("random_init", {}).get(primary or "", {})
    on_gpu = summary.get("peak_cuda_mib") is not None
    clips_per_s = summary.get("clips_per_s")
    step_ms = None
    if clips_per_s:  # clips_per_s counts every process's clips: one step moves batch * world_size
        step_ms = 1000 * summary["batch_size"] * summary.get("world_size", 1) / clips_per_s
    return {
        "case": cell.case, "cell": cell.name, "seed": cell.seed, "status": record.status,
        "policy": summary.get("policy"), "objective": summary.get("objective"),
        "mask_ratio": summary.get("mask_ratio"), "effective_mask_ratio": summary.get("effective_mask_ratio"),
        "protocol": primary, "num_classes": report.get("num_classes"), "val_clips": report.get("val_clips"),
        "label": report.get("label"), "probe_pool": _probe_pool(report), "top1": report.get("top1"), "top5": report.get("top5"),
        "random_init_top1": rand.get("top1"), "random_init_top5": rand.get("top5"),
        "peak_memory_mib": summary.get("peak_cuda_mib") if on_gpu else summary.get("peak_rss_mib"),
        "memory_kind": "CUDA peak allocated" if on_gpu else "CPU peak RSS" if summary else None,
        "step_time_ms": step_ms, "fg_enrichment": summary.get("fg_enrichment"),
        "final_loss_recon": summary.get("final_loss_recon"),
        "final_loss_recon_reference": summary.get("final_loss_recon_reference"), "steps": summary.get("steps"),
        "batch_size": summary.get("batch_size"), "resumed": record.resumed,
        "train_wall_s": record.train_wall_s, "eval_wall_s": record.eval_wall_s,
    }


def _probe_pool(report: dict) -> str | None:
    """How the probe pooled the encoder's tokens (``mean``, ``time`` or ``grid``), if a probe ran."""
    return ((report.get("pretrained") or {}).get("probe") or {}).get("settings", {}).get("pool")


def write_csv(rows: Sequence[dict], path: Path) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows({k: row.get(k) for k in CSV_FIELDS} for row in rows)
    return path


def group_rows(cells: Sequence[Cell], rows: Sequence[dict]) -> list[list[dict]]:
    """Rows of the same grid row (different seeds) together, in grid order."""
    groups: dict[int, list[dict]] = {}
    for cell, row in zip(cells, rows):
        groups.setdefault(cell.row, []).append(row)
    return [groups[k] for k in sorted(groups)]


def _values(rows: Sequence[dict], key: str) -> list[float]:
    return [float(r[key]) for r in rows if r.get(key) is not None and math.isfinite(float(r[key]))]


def standard_error(values: Sequence[float]) -> float:
    """Standard error of the mean over seeds: sample sd / sqrt(n) (needs n >= 2)."""
    return statistics.stdev(values) / math.sqrt(len(values))


def binomial_se(accuracy: float, clips: int) -> float:
    """Standard error of one accuracy measured on ``clips`` independent clips: sqrt(p(1-p)/n)."""
    return math.sqrt(max(accuracy * (1 - accuracy), 0.0) / clips)


def _fmt(values: list[float], scale: float = 1.0, digits: int = 1) -> str:
    """Mean (± standard error over seeds when there are several), or a dash."""
    if not values:
        return "–"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"{mean:.{digits}f}"
    return f"{mean:.{digits}f} ± {standard_error(values) * scale:.{digits}f}"


def chance_line(rows: Sequence[dict]) -> str | None:
    """Chance level and the clip-sampling standard error of a top-1 figure (at chance and at the
    table's mean top-1), so that every figure can be read against noise."""
    classes, clips = _values(rows, "num_classes"), _values(rows, "val_clips")
    if not classes or not clips:
        return None
    chance, n = 1 / classes[0], int(clips[0])
    top1 = _values(rows, "top1") + _values(rows, "random_init_top1")
    level = statistics.fmean(top1) if top1 else chance
    return (
        f"Chance: {100 * chance:.1f}% ({int(classes[0])} classes). Clip-sampling standard error of one top-1 on "
        f"{n} validation clips: {100 * binomial_se(chance, n):.1f} points at chance, "
        f"{100 * binomial_se(level, n):.1f} at {100 * level:.1f}%."
    )


def markdown_table(cells: Sequence[Cell], rows: Sequence[dict], title: str, budget_line: str) -> str:
    """The paper-shaped table: case | mask ratio | top-1 | top-5 | peak memory | step time | fg enrichment."""
    kinds = {r["memory_kind"] for r in rows if r.get("memory_kind")}
    memory_header = f"peak memory (MiB, {' / '.join(sorted(kinds)) or 'n/a'})"
    lines = [
        f"### {title}", "",
        f"| case | mask ratio | top-1 (%) | top-5 (%) | {memory_header} | step time (ms) | fg enrichment | held-out loss |"
        " held-out loss, reference masks |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    notes = []
    for group in group_rows(cells, rows):
        ratio = _values(group, "effective_mask_ratio")
        case = group[0]["case"]
        unfinished = [f"s{r['seed']} {r['status']}" for r in group if r["status"] not in ("done", "skipped")]
        if unfinished:
            case += f" (incomplete: {', '.join(unfinished)})"
        if any(r.get("resumed") for r in group):
            case += " †"
            notes.append("† resumed after an interruption: its peak memory is that of the resumed process only.")
        ratio_text = f"{ratio[0]:.3f}" if ratio else "–"
        lines.append(
            f"| {case} | {ratio_text} | {_fmt(_values(group, 'top1'), 100)} | {_fmt(_values(group, 'top5'), 100)} |"
            f" {_fmt(_values(group, 'peak_memory_mib'), digits=0)} | {_fmt(_values(group, 'step_time_ms'), digits=0)} |"
            f" {_fmt(_values(group, 'fg_enrichment'), digits=2)} | {_fmt(_values(group, 'final_loss_recon'), digits=4)} |"
            f" {_fmt(_values(group, 'final_loss_recon_reference'), digits=4)} |"
        )
    rand1, rand5 = _values(rows, "random_init_top1"), _values(rows, "random_init_top5")
    if rand1:
        lines.append(f"| random init (no pre-training) | – | {_fmt(rand1, 100)} | {_fmt(rand5, 100)} | – | – | – | – | – |")
    chance = chance_line(rows)
    lines += ["", *([chance] if chance else []), budget_line]
    lines += sorted(set(notes))
    return "\n".join(lines) + "\n"


def budget_line(cfg: dict, cells: Sequence[Cell], rows: Sequence[dict], wall_s: float) -> str:
    """One sentence with everything that sizes the figures: steps, batch, model, data, eval protocol."""
    budget, ev = cfg["budget"], cfg["eval"]
    pools = {str(r["probe_pool"]) for r in rows if r.get("probe_pool")}
    pooled = {"time": "per-temporal-slice mean (spatial mean of each slice, concatenated)",
              "grid": "means over a 4x4x4 space-time grid of cells, concatenated",
              "mean": "mean"}.get(pools.pop() if len(pools) == 1 else "", "pooled")
    protocol = {
        "probe": f"linear probe (L-BFGS logistic regression) on the frozen encoder's output over all tokens, {pooled}",
        "finetune": f"full fine-tuning with layer-wise lr decay for {ev['steps']} steps of batch {ev['batch_size']}",
        "both": f"full fine-tuning ({ev['steps']} steps of batch {ev['batch_size']}, layer-wise lr decay); probe also run",
    }[str(ev["protocol"])]
    seeds = ", ".join(str(s) for s in cfg["seeds"])
    extra = " ".join(cfg.get("train_overrides") or []) or "none"
    model, data = _run_text(Path(cfg["out"]), cells)
    labels = sorted({str(r["label"]) for r in rows if r.get("label")})
    classes = _values(rows, "num_classes")
    if labels and classes:
        data += f" (labels: {', '.join(labels)}, {int(classes[0])} classes)"
    return (
        f"Budget per cell: pre-training {budget['max_steps']} steps × batch {budget['batch_size']} "
        f"({int(budget['max_steps']) * int(budget['batch_size'])} clips"
        f"{'' if budget.get('blr') is None else ', base lr ' + format(float(budget['blr']), 'g')}"
        f"{'' if budget.get('precision') is None else ', ' + str(budget['precision'])}), model {model}, data {data}; "
        f"further train overrides: {extra}. Evaluation: {protocol}; {ev['train_clips']} labelled training / "
        f"{ev['val_clips']} validation clips; top-1/top-5 of the pre-trained encoder on the validation clips. "
        f"Fg enrichment = share of visible tokens on moving shapes / share of all tokens on them, on held-out "
        f"clips (1 = chance). Held-out loss: reconstruction error of the masked tokens on held-out clips under each "
        f"policy's own masks (an easy mask gives a low loss) and under one fixed set of random masks, the same "
        f"for every cell (comparable across policies). Step time = training steps only. Seeds: {seeds} (mean ± standard error over seeds). "
        f"Wall time of this invocation: {wall_s / 60:.1f} min; train + eval time recorded for all cells "
        f"(over every invocation that saved its record): {_cell_minutes(rows):.1f} min."
    )


def _cell_minutes(rows: Sequence[dict]) -> float:
    return sum((r.get("train_wall_s") or 0.0) + (r.get("eval_wall_s") or 0.0) for r in rows) / 60


def _run_text(out: Path, cells: Sequence[Cell]) -> tuple[str, str]:
    """Model and data of the first trained cell, from its resolved config.yaml."""
    import yaml

    for cell in cells:
        path = out / "cells" / cell.name / "config.yaml"
        if path.is_file():
            cfg = yaml.safe_load(path.read_text(encoding="utf-8"))
            m = cfg["model"]
            tokens = (m["num_frames"] // m["tubelet_size"]) * (m["img_size"] // m["patch_size"]) ** 2
            target = "per-patch normalized" if m.get("norm_target", True) else "raw-pixel"
            model = (f"{m['preset']} ({m['img_size']} px, {m['num_frames']} frames, patch {m['patch_size']}, "
                     f"tubelet {m['tubelet_size']}: {tokens} tokens; {target} targets)")
            data = cfg["data"]["name"]
            if data == "synthetic":
                data = f"synthetic moving shapes ({cfg['data'].get('background', 'fine')} background)"
            return model, data
    return "n/a", "n/a"


def write_plot(cells: Sequence[Cell], rows: Sequence[dict], path: Path, title: str) -> Path:
    """Two panels per grid row: top-1 (bars, seed spread as error bars) and foreground enrichment."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    groups = group_rows(cells, rows)
    labels = []
    for g in groups:
        ratio = _values(g, "effective_mask_ratio")
        labels.append(f"{g[0]['case']}\n{ratio[0]:.3f}" if ratio else g[0]["case"])
    fig, axes = plt.subplots(1, 2, figsize=(min(max(7.0, 1.0 * len(groups) * 2), 16.0), 3.6))
    for ax, key, scale, name in ((axes[0], "top1", 100, "top-1 (%)"), (axes[1], "fg_enrichment", 1, "fg enrichment")):
        means = [statistics.fmean(_values(g, key)) * scale if _values(g, key) else 0.0 for g in groups]
        errs = [standard_error(_values(g, key)) * scale if len(_values(g, key)) > 1 else 0.0 for g in groups]
        ax.bar(range(len(groups)), means, yerr=errs, color="tab:blue", capsize=3)
        ax.set_xticks(range(len(groups)), labels, fontsize=7)
        ax.set_ylabel(name)
    rand = _values(rows, "random_init_top1")
    if rand:
        axes[0].axhline(statistics.fmean(rand) * 100, color="tab:red", ls="--", lw=1, label="random init")
    classes = _values(rows, "num_classes")
    if classes:
        axes[0].axhline(100 / classes[0], color="0.5", ls=":", lw=1, label="chance")
    if rand or classes:
        axes[0].legend(fontsize=7)
    axes[1].axhline(1.0, color="0.5", ls=":", lw=1)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
