"""The ablation's outputs: one row per cell, a markdown table shaped like the paper's, CSV, plot.

Besides the table of means, every grid row is compared with a baseline row (``report.baseline``):
the per-seed differences ``cell - baseline`` give a paired mean difference and its 95% t interval
(:mod:`adamae_rl.ablation.paired`). Rows are named by short names (``random r=0.9``) derived from
their case label and the overrides that tell rows with the same label apart; a grid cell may set
its own with ``short:``. The same figures go to a LaTeX table (booktabs) and to a plot with
horizontal bars, whose error bars are the 95% intervals.
"""

from __future__ import annotations

import csv
import math
import re
import statistics
import textwrap
from collections.abc import Sequence
from pathlib import Path

from adamae_rl.ablation.paired import PairedDifference, mean_interval, paired_difference
from adamae_rl.ablation.runner import Cell, CellRecord, read_json
from adamae_rl.errors import ConfigError

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


# --------------------------------------------------------------------------------------------------
# Short names and the baseline
# --------------------------------------------------------------------------------------------------
# Override keys shortened in names: the mask ratio appears in most grids.
SHORT_KEYS = {"mask_ratio": "r"}


def _short_override(override: str) -> tuple[str, str]:
    """``policy.width=64`` -> (``width``, ``64``); ``mask_ratio=0.90`` -> (``r``, ``0.9``)."""
    key, _, value = override.lstrip("+~").partition("=")
    short = SHORT_KEYS.get(key, key.rsplit(".", 1)[-1])
    if re.fullmatch(r"[-+]?\d*\.\d+(e[-+]?\d+)?", value):  # 0.90 -> 0.9; integers and names as given
        value = format(float(value), "g")
    return short, value


def short_names(cells: Sequence[Cell]) -> dict[int, str]:
    """Grid row -> its short name.

    A row's own ``short`` label wins; otherwise its case label, followed, where several rows share
    that label, by the overrides that tell them apart (``random r=0.75``, ``random r=0.9``).
    """
    rows: dict[int, Cell] = {}
    for cell in cells:
        rows.setdefault(cell.row, cell)
    by_case: dict[str, list[int]] = {}
    for row, cell in rows.items():
        by_case.setdefault(cell.case, []).append(row)
    names = {}
    for row, cell in rows.items():
        if cell.short:
            names[row] = cell.short
            continue
        siblings = by_case[cell.case]
        if len(siblings) == 1:
            names[row] = cell.case
            continue
        # dict of key -> value per sibling; the keys whose values differ name the row
        settings = {r: dict(o.lstrip("+~").partition("=")[::2] for o in rows[r].overrides) for r in siblings}
        keys = [k for k in dict.fromkeys(k for r in siblings for k in settings[r])
                if len({settings[r].get(k) for r in siblings}) > 1]
        distinct = " ".join("=".join(_short_override(f"{k}={settings[row][k]}")) for k in keys if k in settings[row])
        names[row] = f"{cell.case} {distinct}".strip()
    counts: dict[str, int] = {}
    for name in names.values():
        counts[name] = counts.get(name, 0) + 1
    return {row: f"{name} #{row}" if counts[name] > 1 else name for row, name in names.items()}


def resolve_baseline(cells: Sequence[Cell], choice: str | None) -> int | None:
    """The grid row that every other row is compared with.

    Args:
        choice: ``auto`` (the first row with ``policy=random``, else the first row), ``none``
            (no comparison), a short name, or a case label that names a single row.
    Raises:
        ConfigError: ``choice`` names no row, or a case label shared by several rows.
    """
    if choice is None or str(choice).lower() in ("none", "null", "false", ""):
        return None
    names = short_names(cells)
    if str(choice) == "auto":
        for row in sorted(names):
            overrides = next(c.overrides for c in cells if c.row == row)
            policies = [o.split("=", 1)[1] for o in overrides if o.lstrip("+").startswith("policy=")]
            if policies and policies[-1] == "random":
                return row
        return min(names)
    wanted = " ".join(str(choice).split())
    for row, name in names.items():
        if name == wanted:
            return row
    rows = sorted({c.row for c in cells if c.case == wanted})
    if len(rows) == 1:
        return rows[0]
    listed = ", ".join(repr(n) for n in names.values())
    if rows:
        raise ConfigError(f"report.baseline={choice!r} names {len(rows)} rows; give one of their short names: {listed}")
    raise ConfigError(f"report.baseline={choice!r} names no grid row; give auto, none or one of {listed}")


# --------------------------------------------------------------------------------------------------
# Differences from the baseline
# --------------------------------------------------------------------------------------------------
# (key, label, scale, digits): figures compared with the baseline, as the table shows them.
DIFF_METRICS = (
    ("top1", "top-1 (points)", 100.0, 1),
    ("fg_enrichment", "fg enrichment", 1.0, 2),
    ("final_loss_recon_reference", "held-out loss, reference masks", 1.0, 4),
)
DIFF_CSV_FIELDS = ("short", "case", "overrides", "baseline", "metric", "label", "n", "seeds", "mean_diff", "ci_low", "ci_high",
                   "ci_half_width", "confidence")


def _by_seed(group: Sequence[dict], key: str, scale: float) -> dict[int, float]:
    return {int(r["seed"]): float(r[key]) * scale for r in group
            if r.get(key) is not None and math.isfinite(float(r[key])) and r.get("status") in ("done", "skipped", None)}


def differences(cells: Sequence[Cell], rows: Sequence[dict], baseline: int) -> dict[int, dict[str, PairedDifference]]:
    """Grid row -> metric -> the paired difference from row ``baseline`` (in the table's units)."""
    groups = dict(zip(sorted({c.row for c in cells}), group_rows(cells, rows)))
    out = {}
    for row, group in groups.items():
        out[row] = {key: paired_difference(_by_seed(group, key, scale), _by_seed(groups[baseline], key, scale))
                    for key, _, scale, _ in DIFF_METRICS}
    return out


def format_difference(d: PairedDifference, digits: int) -> str:
    """``+3.1 ± 2.0`` (mean ± 95% half-width), ``+3.1 (1 seed: CI undefined)``, or a dash."""
    if d.mean is None:
        return "–"
    if d.half_width is None:
        return f"{d.mean:+.{digits}f} (1 seed: CI undefined)"
    return f"{d.mean:+.{digits}f} ± {d.half_width:.{digits}f}"


def difference_section(cells: Sequence[Cell], rows: Sequence[dict], baseline: int | None) -> str:
    """Markdown: each row's paired difference from the baseline row, and the short-name legend."""
    names = short_names(cells)
    lines = []
    if baseline is not None:
        diffs = differences(cells, rows, baseline)
        lines += [
            f"### Difference from the baseline: {names[baseline]}", "",
            "Paired by seed: mean over seeds of (cell − baseline) ± the half-width of its 95% confidence interval, "
            "t(0.975, n − 1) · sd / √n over the n seeds that both finished. With one seed the interval is undefined.",
            "",
            "| cell | " + " | ".join(f"Δ {label}" for _, label, _, _ in DIFF_METRICS) + " | paired seeds |",
            "|---" * (len(DIFF_METRICS) + 2) + "|",
        ]
        for row in sorted(diffs):
            if row == baseline:
                lines.append(f"| {names[row]} | " + " | ".join("baseline" for _ in DIFF_METRICS) + " | – |")
                continue
            n = max(d.n for d in diffs[row].values())
            cols = [format_difference(diffs[row][key], digits) for key, _, _, digits in DIFF_METRICS]
            lines.append(f"| {names[row]} | " + " | ".join(cols) + f" | {n} |")
        lines.append("")
    lines += ["### Cells", "", "| short name | case | overrides |", "|---|---|---|"]
    for row in sorted(names):
        cell = next(c for c in cells if c.row == row)
        lines.append(f"| {names[row]} | {cell.case} | {' '.join(cell.overrides) or '(defaults)'} |")
    return "\n".join(lines) + "\n"


def write_difference_csv(cells: Sequence[Cell], rows: Sequence[dict], baseline: int | None, path: Path) -> Path:
    """One line per grid row and metric: the paired difference from the baseline and its interval,
    in the units of ``label`` (top-1 in points), or only the header when there is no baseline."""
    names = short_names(cells)
    with open(path, "w", newline="", encoding="utf-8") as f:
        writer = csv.DictWriter(f, fieldnames=DIFF_CSV_FIELDS)
        writer.writeheader()
        if baseline is None:
            return path
        labels = {key: label for key, label, _, _ in DIFF_METRICS}
        for row, metrics in sorted(differences(cells, rows, baseline).items()):
            cell = next(c for c in cells if c.row == row)
            for key, d in metrics.items():
                writer.writerow({
                    "short": names[row], "case": cell.case, "overrides": " ".join(cell.overrides),
                    "baseline": names[baseline], "metric": key, "label": labels[key], "n": d.n, "seeds": " ".join(map(str, d.seeds)),
                    "mean_diff": d.mean, "ci_low": d.low, "ci_high": d.high, "ci_half_width": d.half_width,
                    "confidence": d.confidence,
                })
    return path


# --------------------------------------------------------------------------------------------------
# LaTeX
# --------------------------------------------------------------------------------------------------
_LATEX_SPECIAL = {"\\": r"\textbackslash{}", "&": r"\&", "%": r"\%", "$": r"\$", "#": r"\#", "_": r"\_",
                  "{": r"\{", "}": r"\}", "~": r"\textasciitilde{}", "^": r"\textasciicircum{}"}


def latex_escape(text: str) -> str:
    r"""``text`` as LaTeX source that prints it (``loss_predictor`` -> ``loss\_predictor``)."""
    return "".join(_LATEX_SPECIAL.get(ch, ch) for ch in str(text)).replace("−", "$-$").replace("±", r"$\pm$")


def _latex_value(values: list[float], scale: float, digits: int) -> str:
    if not values:
        return "--"
    mean = statistics.fmean(values) * scale
    if len(values) == 1:
        return f"${mean:.{digits}f}$"
    return f"${mean:.{digits}f} \\pm {standard_error(values) * scale:.{digits}f}$"


def _latex_difference(d: PairedDifference, digits: int) -> str:
    if d.mean is None:
        return "--"
    if d.half_width is None:
        return f"${d.mean:+.{digits}f}$ (n=1)"
    return f"${d.mean:+.{digits}f} \\pm {d.half_width:.{digits}f}$"


def latex_table(cells: Sequence[Cell], rows: Sequence[dict], title: str, baseline: int | None, label: str) -> str:
    """A booktabs table (needs ``\\usepackage{booktabs}``): short name, mask ratio, top-1, the paired
    difference in top-1 from the baseline, fg enrichment and held-out loss under reference masks."""
    names = short_names(cells)
    diffs = differences(cells, rows, baseline) if baseline is not None else {}
    groups = dict(zip(sorted(names), group_rows(cells, rows)))
    delta = [] if baseline is None else [f"$\\Delta$ top-1 vs.\\ {latex_escape(names[baseline])}"]
    header = ["Cell", "Mask ratio", r"Top-1 (\%)", *delta, "FG enrichment", "Held-out loss (ref.)"]
    lines = [
        "% " + title.replace("\n", " "),
        "% Generated by python -m adamae_rl.ablate; needs \\usepackage{booktabs}.",
        r"\begin{table}[t]", r"\centering",
        rf"\caption{{{latex_escape(title)}. Mean $\pm$ standard error over seeds"
        + ("" if baseline is None else
           r"; $\Delta$: mean paired difference from the baseline $\pm$ the half-width of its 95\% t interval "
           r"over seeds (n=1: a single seed, no interval)") + ".}",
        rf"\label{{{label}}}",
        r"\begin{tabular}{l" + "r" * (len(header) - 1) + "}", r"\toprule",
        " & ".join(header) + r" \\", r"\midrule",
    ]
    for row, group in groups.items():
        ratio = _values(group, "effective_mask_ratio")
        cols = [latex_escape(names[row]), f"{ratio[0]:.3f}" if ratio else "--", _latex_value(_values(group, "top1"), 100, 1)]
        if baseline is not None:
            cols.append("baseline" if row == baseline else _latex_difference(diffs[row]["top1"], 1))
        cols += [_latex_value(_values(group, "fg_enrichment"), 1, 2),
                 _latex_value(_values(group, "final_loss_recon_reference"), 1, 4)]
        lines.append(" & ".join(cols) + r" \\")
    rand = _values(rows, "random_init_top1")
    if rand:
        lines += [r"\midrule", " & ".join(["random init (no pre-training)", "--", _latex_value(rand, 100, 1),
                                            *(["--"] if baseline is not None else []), "--", "--"]) + r" \\"]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


# --------------------------------------------------------------------------------------------------
# Plot
# --------------------------------------------------------------------------------------------------
def write_plot(cells: Sequence[Cell], rows: Sequence[dict], path: Path, title: str, baseline: int | None = None) -> Path:
    """:func:`plot_figure` written to ``path``; the format follows its suffix (png, pdf, svg)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig = plot_figure(cells, rows, title, baseline)
    fig.savefig(path, dpi=130)
    plt.close(fig)
    return path


def plot_figure(cells: Sequence[Cell], rows: Sequence[dict], title: str, baseline: int | None = None):
    """Horizontal bars, one per grid row (its short name): top-1, its paired difference from the
    baseline (when there is one) and fg enrichment; error bars are 95% t intervals over seeds
    (none with a single seed). Returns the matplotlib figure (constrained layout)."""
    import matplotlib.pyplot as plt

    names = short_names(cells)
    order = sorted(names)
    groups = dict(zip(order, group_rows(cells, rows)))
    labels = [textwrap.fill(names[r], 26) for r in order]
    lines_per_label = max(label.count("\n") + 1 for label in labels)
    panels: list[tuple[str, list[float], list[float]]] = []
    for key, name, scale in (("top1", "top-1 (%)", 100.0), ("fg_enrichment", "fg enrichment", 1.0)):
        values = [[v * scale for v in _values(groups[r], key)] for r in order]
        panels.append((name, [statistics.fmean(v) if v else math.nan for v in values],
                       [mean_interval(v) or 0.0 for v in values]))
    if baseline is not None:
        diffs = differences(cells, rows, baseline)
        top1 = [diffs[r]["top1"] for r in order]
        panels.insert(1, (f"Δ top-1 vs {names[baseline]} (points)",
                          [d.mean if d.mean is not None else math.nan for d in top1],
                          [d.half_width or 0.0 for d in top1]))
    # height grows with the rows (and their wrapped lines) so that tick labels never touch
    height = 1.3 + len(order) * (0.22 + 0.16 * lines_per_label)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.2 * len(panels) + 1.8, height), sharey=True,
                             layout="constrained", squeeze=False)
    y = list(range(len(order)))
    for ax, (name, means, errs) in zip(axes[0], panels):
        ax.barh(y, [0.0 if math.isnan(m) else m for m in means], xerr=errs, color="tab:blue", capsize=3, height=0.6)
        for i, m in enumerate(means):
            if math.isnan(m):
                ax.text(0, i, " n/a", va="center", fontsize=7, color="0.4")
        ax.set_xlabel(textwrap.fill(name, 34), fontsize=8)
        ax.tick_params(axis="x", labelsize=7)
        ax.grid(axis="x", color="0.9", lw=0.6)
        ax.set_axisbelow(True)
    axes[0, 0].set_yticks(y, labels, fontsize=8)
    axes[0, 0].invert_yaxis()  # grid order from the top
    top1_ax = axes[0, 0]
    rand = _values(rows, "random_init_top1")
    if rand:
        top1_ax.axvline(statistics.fmean(rand) * 100, color="tab:red", ls="--", lw=1, label="random init")
    classes = _values(rows, "num_classes")
    if classes:
        top1_ax.axvline(100 / classes[0], color="0.5", ls=":", lw=1, label="chance")
    if rand or classes:  # below the panels: inside, it would hide bars
        fig.legend(*top1_ax.get_legend_handles_labels(), fontsize=7, loc="outside lower left", ncols=2, frameon=False)
    if baseline is not None:
        axes[0, 1].axvline(0.0, color="0.3", lw=0.8)
        axes[0, 1].text(0, order.index(baseline), " baseline", va="center", fontsize=7, color="0.4")
    axes[0, -1].axvline(1.0, color="0.5", ls=":", lw=1)
    fig.suptitle(title, fontsize=9)
    return fig
