"""The run report (``report.md``), its building blocks, and the terminal summary the CLI prints.

Every section tolerates missing optional parts of the metrics dict: a run without a "before" pass, an
evaluation without epochs, or metrics written by an older version still render (the section is skipped
or shows "—").
"""

from __future__ import annotations

import io
import math
import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.table import Table

DASH = "—"
SCORE_KEYS = ("precision", "recall", "f1", "accuracy")
SCORE_NAMES = {
    "precision": "Precision",
    "recall": "Recall",
    "f1": "F1",
    "accuracy": "Token accuracy",
    "loss": "Loss",
}
IMAGE_TITLES = {"confusion_matrix": "Confusion matrix (test)", "curves": "Training curves"}
# Config keys worth a line in the report header; the full config stays in metrics.json.
SETUP_KEYS = (
    ("model", "name_or_path", "Base model"),
    ("data", "format", "Data format"),
    ("lora", "r", "LoRA rank"),
    ("lora", "alpha", "LoRA alpha"),
    ("lora", "target_modules", "LoRA target modules"),
    ("training", "epochs", "Epochs"),
    ("training", "learning_rate", "Learning rate"),
    ("training", "batch_size", "Batch size"),
)
TERMINAL_TYPE_LIMIT = 20


# --------------------------------------------------------------------------- formatting helpers


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def fmt_score(value: Any, digits: int = 4) -> str:
    return f"{value:.{digits}f}" if _is_number(value) else DASH


def fmt_delta(before: Any, after: Any) -> str:
    if not (_is_number(before) and _is_number(after)):
        return DASH
    return f"{after - before:+.4f}"


def fmt_epoch(value: Any) -> str:
    if not _is_number(value):
        return DASH
    return str(int(value)) if float(value).is_integer() else f"{value:.2f}"


def fmt_duration(seconds: float) -> str:
    """``3725.2`` → ``1h 02m 05s``; short runs keep a decimal (``4.3s``)."""
    if seconds < 60:
        return f"{seconds:.1f}s"
    whole = round(seconds)
    hours, rest = divmod(whole, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}h {minutes:02d}m {secs:02d}s" if hours else f"{minutes}m {secs:02d}s"


def _cell(value: Any) -> str:
    # A "|" or newline inside a cell would break the markdown table row.
    return str(value).replace("\\", "\\\\").replace("|", "\\|").replace("\r", " ").replace("\n", " ")


def render_markdown_table(headers: Sequence[str], rows: Iterable[Sequence[Any]]) -> str:
    """A GitHub-flavoured markdown table; cells are str()-ed and escaped."""
    lines = ["| " + " | ".join(_cell(h) for h in headers) + " |", "|" + " --- |" * len(headers)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def render_text_table(headers: Sequence[str], rows: Sequence[Sequence[Any]], title: str | None = None) -> str:
    """An aligned plain-text table for terminals (rich, no colour): first column left, the rest right."""
    table = Table(*headers, title=title, box=box.SIMPLE_HEAD, title_justify="left", pad_edge=False)
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    sink = io.StringIO()
    Console(file=sink, width=200, color_system=None, highlight=False).print(table)
    return "\n".join(line.rstrip() for line in sink.getvalue().splitlines()).strip("\n")


# --------------------------------------------------------------------------- parameter efficiency


def _ratio(total: int, trainable: int) -> str:
    return f"1:{round(total / trainable):,}" if trainable else "n/a"


def _percent(part: int, whole: int) -> str:
    if not whole:
        return "n/a"
    pct = 100.0 * part / whole
    if pct >= 0.01 or pct == 0:
        return f"{pct:.2f}%"
    # A tiny adapter on a huge model is <0.01%: show its digits rather than a misleading "0.00%".
    digits = f"{pct:.6f}".rstrip("0")
    return "<0.000001%" if digits == "0." else f"{digits}%"


def parameter_table(total: int, trainable: int) -> list[tuple[str, str]]:
    """Rows (label, value): total, trainable, trainable %, frozen, ratio ``1:N`` (trainable:total)."""
    if total < 0 or trainable < 0 or trainable > total:
        raise ValueError(f"need 0 <= trainable <= total, got trainable={trainable}, total={total}")
    return [
        ("Total parameters", f"{total:,}"),
        ("Trainable parameters", f"{trainable:,}"),
        ("Trainable %", _percent(trainable, total)),
        ("Frozen parameters", f"{total - trainable:,}"),
        ("Ratio (trainable : total)", _ratio(total, trainable)),
    ]


# --------------------------------------------------------------------------- samples


def group_entities_by_type(entities: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
    """``[(type, text), ...]`` → ``{type: [text, ...]}``; types and texts keep first-seen order."""
    grouped: dict[str, list[str]] = {}
    for etype, text in entities:
        grouped.setdefault(etype, []).append(text)
    return grouped


def _mark_texts(
    texts: list[str], other: list[str], wrong_type: Mapping[str, str], miss_mark: str, role: str
) -> list[str]:
    """Mark each text ✓ if ``other`` (same type, other side) has it, else ``miss_mark``.

    Matching consumes counts, so a name predicted once but present twice in gold is one match and one
    miss. ``wrong_type`` maps an unmatched text to the type the other side gave it, if any.
    """
    available = Counter(other)
    marked = []
    for text in texts:
        if available[text] > 0:
            available[text] -= 1
            marked.append(f"✓ {text}")
        elif text in wrong_type:
            marked.append(f"{miss_mark} {text} ({role}: {wrong_type[text]})")
        else:
            marked.append(f"{miss_mark} {text}")
    return marked


def _unmatched_types(side: dict[str, list[str]], other: dict[str, list[str]]) -> dict[str, str]:
    """text → type on ``side`` for texts that ``other`` has under a different type only."""
    found: dict[str, str] = {}
    for etype, texts in side.items():
        for text in texts:
            if text not in other.get(etype, []):
                found.setdefault(text, etype)
    return found


def _sample_text(text_or_tokens: str | Sequence[str], max_chars: int | None) -> str:
    text = text_or_tokens if isinstance(text_or_tokens, str) else " ".join(text_or_tokens)
    if max_chars is not None and len(text) > max_chars:
        text = text[:max_chars].rstrip() + " …"
    return "\n".join("> " + line if line.strip() else ">" for line in text.splitlines() or [""])


def render_sample(
    text_or_tokens: str | Sequence[str],
    gold: Sequence[tuple[str, str]],
    pred: Sequence[tuple[str, str]],
    title: str | None = None,
    max_chars: int | None = 1500,
) -> str:
    """One sample as markdown: the text, then a table of gold vs predicted entities per type.

    Marks: ``✓`` matched (same type and text), ``✗`` gold entity missed, ``+`` spurious prediction;
    a wrong-type hit shows the other side's type in parentheses.
    """
    gold_by, pred_by = group_entities_by_type(gold), group_entities_by_type(pred)
    pred_elsewhere = _unmatched_types(pred_by, gold_by)
    gold_elsewhere = _unmatched_types(gold_by, pred_by)
    parts = [f"### {title}", ""] if title else []
    parts += [_sample_text(text_or_tokens, max_chars), ""]
    parts.append("Predicted vs gold entities, grouped by type (✓ match, ✗ missed, + spurious):")
    parts.append("")
    types = list(dict.fromkeys([*gold_by, *pred_by]))
    if not types:
        parts.append("_No entities in gold or prediction._")
        return "\n".join(parts) + "\n"
    rows = []
    for etype in types:
        g, p = gold_by.get(etype, []), pred_by.get(etype, [])
        gold_cells = _mark_texts(g, p, pred_elsewhere, "✗", "predicted")
        pred_cells = _mark_texts(p, g, gold_elsewhere, "+", "gold")
        rows.append((etype, "; ".join(gold_cells) or DASH, "; ".join(pred_cells) or DASH))
    parts.append(render_markdown_table(["Type", "Gold", "Predicted"], rows))
    return "\n".join(parts) + "\n"


# --------------------------------------------------------------------------- report sections


def _setup_section(metrics: Mapping[str, Any]) -> list[str]:
    config = metrics.get("config")
    if not isinstance(config, Mapping):
        return []
    rows = []
    for section, key, label in SETUP_KEYS:
        node = config.get(section)
        if isinstance(node, Mapping) and node.get(key) is not None:
            value = node[key]
            rows.append((label, ", ".join(map(str, value)) if isinstance(value, list) else value))
    return ["## Setup", "", render_markdown_table(["Setting", "Value"], rows), ""] if rows else []


def _params_section(metrics: Mapping[str, Any]) -> list[str]:
    params = metrics.get("params")
    if not isinstance(params, Mapping) or not {"total", "trainable"} <= params.keys():
        return []
    rows = parameter_table(int(params["total"]), int(params["trainable"]))
    return ["## Parameter efficiency", "", render_markdown_table(["Item", "Value"], rows), ""]


def _before_after_section(metrics: Mapping[str, Any]) -> list[str]:
    after = metrics.get("test")
    if not isinstance(after, Mapping):
        return []
    before = metrics.get("before") if isinstance(metrics.get("before"), Mapping) else None
    keys = [*SCORE_KEYS, *(["loss"] if "loss" in after or (before and "loss" in before) else [])]
    if before is None:
        rows = [(SCORE_NAMES[k], fmt_score(after.get(k))) for k in keys]
        table = render_markdown_table(["Metric (test)", "After fine-tuning"], rows)
        note = "_No evaluation before fine-tuning was run._"
        return ["## Test results", "", table, "", note, ""]
    rows = [
        (
            SCORE_NAMES[k],
            fmt_score(before.get(k)),
            fmt_score(after.get(k)),
            fmt_delta(before.get(k), after.get(k)),
        )
        for k in keys
    ]
    table = render_markdown_table(["Metric (test)", "Before fine-tuning", "After fine-tuning", "Δ"], rows)
    return ["## Before vs after fine-tuning", "", table, ""]


def _epochs_section(metrics: Mapping[str, Any]) -> list[str]:
    epochs = metrics.get("epochs") or []
    if not epochs:
        return []
    rows = [
        (
            fmt_epoch(e.get("epoch", i)),
            fmt_score(e.get("train_loss")),
            fmt_score(e.get("eval_loss")),
            fmt_score(e.get("precision")),
            fmt_score(e.get("recall")),
            fmt_score(e.get("f1")),
        )
        for i, e in enumerate(epochs, start=1)
    ]
    headers = ["Epoch", "Train loss", "Val loss", "Val P", "Val R", "Val F1"]
    return ["## Per-epoch validation", "", render_markdown_table(headers, rows), ""]


def sorted_per_type(per_type: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, Mapping[str, Any]]]:
    """Types by support, largest first; ties by name so the order is stable."""
    return sorted(per_type.items(), key=lambda kv: (-int(kv[1].get("support", 0) or 0), kv[0]))


def _per_type_rows(per_type: Mapping[str, Mapping[str, Any]]) -> list[tuple[str, ...]]:
    return [
        (
            name,
            fmt_score(s.get("precision")),
            fmt_score(s.get("recall")),
            fmt_score(s.get("f1")),
            str(s.get("support", DASH)),
        )
        for name, s in sorted_per_type(per_type)
    ]


def _per_type_section(metrics: Mapping[str, Any]) -> list[str]:
    test = metrics.get("test")
    per_type = test.get("per_type") if isinstance(test, Mapping) else None
    if not per_type:
        return []
    table = render_markdown_table(["Type", "Precision", "Recall", "F1", "Support"], _per_type_rows(per_type))
    return ["## Per-type results (test)", "", table, ""]


def _relative(image: str, base: Path) -> str:
    # Links must survive moving the run directory, so absolute paths are made relative to the report.
    path = Path(image)
    if path.is_absolute():
        path = Path(os.path.relpath(path, base.resolve()))
    return path.as_posix()


def _images_section(images: Mapping[str, str], base: Path) -> list[str]:
    lines: list[str] = []
    for key, image in images.items():
        title = IMAGE_TITLES.get(key, key.replace("_", " ").capitalize())
        lines += [f"## {title}", "", f"![{title}]({_relative(image, base)})", ""]
    return lines


def _samples_section(samples: Sequence[str]) -> list[str]:
    if not samples:
        return []
    return ["## Samples (test)", "", *(s.rstrip() + "\n" for s in samples)]


def _timing_section(metrics: Mapping[str, Any]) -> list[str]:
    timing = metrics.get("timing")
    if not isinstance(timing, Mapping) or not timing:
        return []
    rows = []
    for key, value in timing.items():
        if key.endswith("_seconds") and _is_number(value):
            label = key.removesuffix("_seconds").replace("_", " ")
            rows.append((f"{label} time", fmt_duration(float(value))))
        else:
            rows.append((key.replace("_", " "), value))
    return ["## Timing", "", render_markdown_table(["Item", "Value"], rows), ""]


def _title(metrics: Mapping[str, Any]) -> list[str]:
    lines = [f"# NER fine-tuning report: {metrics.get('name') or 'unnamed run'}", ""]
    test = metrics.get("test")
    if isinstance(test, Mapping) and _is_number(test.get("examples")):
        n = int(test["examples"])
        lines += [
            f"Test set: {n} example{'s' if n != 1 else ''}. Scores are strict IOB2 entity-level "
            "(type and both boundaries must match), micro-averaged.",
            "",
        ]
    return lines


def render_report(
    metrics: Mapping[str, Any], samples: Sequence[str], images: Mapping[str, str], base: Path = Path(".")
) -> str:
    """The report as a markdown string; ``base`` is the report's directory (for image links)."""
    sections = [
        _title(metrics),
        _setup_section(metrics),
        _params_section(metrics),
        _before_after_section(metrics),
        _epochs_section(metrics),
        _per_type_section(metrics),
        _images_section(images, base),
        _samples_section(samples),
        _timing_section(metrics),
    ]
    return "\n".join(line for section in sections for line in section).rstrip() + "\n"


def write_report(
    path: str | Path, metrics: Mapping[str, Any], samples: Sequence[str], images: Mapping[str, str]
) -> None:
    """Write the markdown report. ``path`` is the ``.md`` file, or a directory to hold ``report.md``.

    ``images`` maps a key (``confusion_matrix``, ``curves``, ...) to an image path; relative paths are
    used as-is, absolute ones are made relative to the report's directory.
    """
    path = Path(path)
    if path.suffix.lower() != ".md":
        path = path / "report.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_report(metrics, samples, images, path.parent), encoding="utf-8")


# --------------------------------------------------------------------------- terminal summary


def _scores_rows(after: Mapping[str, Any], before: Mapping[str, Any] | None) -> list[tuple[str, ...]]:
    keys = [*SCORE_KEYS, *(["loss"] if "loss" in after else [])]
    if before is None:
        return [(SCORE_NAMES[k], fmt_score(after.get(k))) for k in keys]
    return [
        (
            SCORE_NAMES[k],
            fmt_score(before.get(k)),
            fmt_score(after.get(k)),
            fmt_delta(before.get(k), after.get(k)),
        )
        for k in keys
    ]


def format_metrics_table(metrics: Mapping[str, Any]) -> str:
    """Plain-text summary for the terminal.

    Accepts a run's metrics (``{"name", "test", "before", ...}``) or a bare evaluation dict
    (``{"precision", "recall", "f1", "accuracy", "per_type", ...}``, as ``loraner evaluate`` writes).
    """
    is_run = isinstance(metrics.get("test"), Mapping)
    after: Mapping[str, Any] = metrics["test"] if is_run else metrics
    before = metrics.get("before") if is_run and isinstance(metrics.get("before"), Mapping) else None
    headers = ["metric", "before", "after", "delta"] if before is not None else ["metric", "value"]
    title = f"{metrics.get('name')}: test set" if is_run and metrics.get("name") else "Entity scores"
    blocks = [title, render_text_table(headers, _scores_rows(after, before))]
    per_type = after.get("per_type") or {}
    if per_type:
        rows = _per_type_rows(per_type)
        blocks += [
            "",
            "per type (by support)",
            render_text_table(["type", "P", "R", "F1", "support"], rows[:TERMINAL_TYPE_LIMIT]),
        ]
        if len(rows) > TERMINAL_TYPE_LIMIT:
            blocks.append(f"... and {len(rows) - TERMINAL_TYPE_LIMIT} more types")
    params = metrics.get("params") if is_run else None
    if isinstance(params, Mapping) and {"total", "trainable"} <= params.keys():
        table = parameter_table(int(params["total"]), int(params["trainable"]))
        blocks += ["", render_text_table(["parameters", ""], table)]
    return "\n".join(blocks)
