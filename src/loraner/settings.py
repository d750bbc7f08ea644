"""Typed experiment presets (YAML under ``configs/``) and ``--set key=value`` overrides."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from loraner import defaults
from loraner.errors import ConfigError

# Windows hold the text between the special tokens; four is the most any supported tokenizer adds.
MAX_SPECIAL_TOKENS = 4

Batching = Literal["length_chunks", "length_buckets", "random"]

# The predictor's O-probability cut-off: a word is an entity wherever P(O) < o_threshold (its best
# non-O label wins). Above 0.5 it trades precision for recall, which de-identification wants.
OThreshold = Annotated[float, Field(gt=0.0, le=1.0)]


class YamlLoader(yaml.SafeLoader):
    """Safe YAML where only ``true``/``false`` are booleans (YAML 1.2): ``no``, ``yes``, ``on`` and ``off``
    stay the strings the user typed (``mixed_precision: no`` means "no"). A boolean field still takes
    them: pydantic reads "yes"/"no"/"on"/"off" as booleans."""


YamlLoader.yaml_implicit_resolvers = {
    first: [(tag, rx) for tag, rx in resolvers if tag != "tag:yaml.org,2002:bool"]
    for first, resolvers in yaml.SafeLoader.yaml_implicit_resolvers.items()
}
YamlLoader.add_implicit_resolver(
    "tag:yaml.org,2002:bool", re.compile(r"^(?:true|True|TRUE|false|False|FALSE)$"), list("tTfF")
)


def load_yaml(text: str) -> Any:
    """YAML as presets, ``--set`` values and de-identification configs are read (see :class:`YamlLoader`)."""
    return yaml.load(text, Loader=YamlLoader)


def window_problem(max_length: int, stride: int) -> str | None:
    """Why ``max_length``/``stride`` cannot window a text, or None. The one check of these values:
    consecutive windows share ``stride`` tokens, at most half of the text a window holds."""
    if max_length < 8:
        return f"max_length must be at least 8 (got {max_length})"
    if stride < 0:
        return f"stride must be >= 0 (got {stride})"
    most = (max_length - MAX_SPECIAL_TOKENS) // 2
    if stride > most:
        return f"stride {stride} is too large for max_length {max_length}: at most {most}"
    return None


def o_threshold_problem(value: float | None) -> str | None:
    if value is not None and not 0.0 < value <= 1.0:
        return f"o_threshold must be in (0, 1] (got {value})"
    return None


class Strict(BaseModel):
    """Every settings and request model forbids unknown keys: a typo fails instead of being ignored."""

    model_config = ConfigDict(extra="forbid")


class LabelStudioOptions(Strict):
    """``data.label_studio``: how a Label Studio JSON export (``format: label-studio``) becomes examples."""

    text_field: str | None = Field(
        None,
        description="the key of a task's data that holds the text ($text in the labelling config); default: "
        "'text', or the task's only string",
    )
    from_name: str | None = Field(
        None, description="the Labels control to read (its name); default: the only one the export has"
    )
    annotator: int | str | None = Field(
        None,
        description="take this annotator's annotation of each task (a user id, or an email where the export "
        "has them); default: the latest annotation that was not cancelled",
    )
    labels: list[str] | None = Field(
        None,
        description="the project's labels: a region with another label is reported and its task skipped "
        "(default: every label is taken)",
    )
    holdout: dict[str, float] = Field(
        default_factory=lambda: {"validation": 0.1, "test": 0.1},
        description="when data.path is one export file: the share of tasks in each held-out split (seeded "
        "by data.seed); the rest are 'train'",
    )


class DataConfig(Strict):
    """Where the examples come from. ``format`` picks the reader (``loraner.data`` registers them and
    says which exist); the rest are that reader's options."""

    format: str
    path: str | None = None
    splits: dict[str, str] = Field(
        default_factory=lambda: {"train": "train", "validation": "validation", "test": "test"},
        description="split name -> file name (local formats) or hub split name",
    )
    scheme: Literal["auto", "IO", "IOB1", "IOB2", "BIOES"] = "auto"
    token_column: int | str = 0
    tag_column: int | str = -1
    tag_type: Literal["fine", "coarse"] = "fine"
    hub_name: str = "DFKI-SLT/few-nerd"
    hub_config: str | None = "supervised"
    view: Literal["notes", "structured"] = "notes"
    label_map: dict[str, str] = Field(default_factory=dict)
    join_spans: list[str] = Field(
        default_factory=list,
        description="entity types whose neighbouring spans, separated only by spaces on one line, become one "
        "span (after label_map): [PATIENT] scores data that tags first and last names apart (Nor-DeID) "
        "under the full-name convention of `loraner data synth`",
    )
    sample: dict[str, int | float | None] = Field(default_factory=dict)
    seed: int = 42
    synth_counts: dict[str, int] = Field(default_factory=lambda: dict(defaults.SYNTH_COUNTS.value))
    synth_locales: list[str] = Field(default_factory=lambda: list(defaults.SYNTH_LOCALES.value))
    label_studio: LabelStudioOptions = Field(default_factory=LabelStudioOptions)


class ModelConfig(Strict):
    """``model:``: the base model (a path, ``pkg:MODULE`` or a hub id ``OWNER/NAME[@REVISION]``) and the
    window every text is cut into for training, evaluation and serving."""

    name_or_path: str = "roberta-base"
    max_length: int = Field(defaults.MAX_LENGTH.value, description=defaults.MAX_LENGTH.help)
    stride: int = Field(defaults.STRIDE.value, description=defaults.STRIDE.help)
    label_all_subwords: bool = False

    @model_validator(mode="after")
    def _window_fits(self) -> ModelConfig:
        problem = window_problem(self.max_length, self.stride)
        if problem:
            raise ValueError(problem)
        return self


class LoraSettings(Strict):
    """``lora:``: the PEFT LoRA adapter (``enabled: false`` trains the whole model)."""

    enabled: bool = True
    r: int = Field(16, ge=1)
    alpha: int = 32
    dropout: float = Field(0.1, ge=0.0, lt=1.0)
    target_modules: list[str] | Literal["all-linear"] = Field(default_factory=lambda: ["query", "value"])
    bias: Literal["none", "lora_only", "all"] = "none"


class TrainingConfig(Strict):
    """``training:``: the optimiser, schedule, batches and precision of ``loraner train``."""

    epochs: float = Field(5, gt=0)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: int = Field(64, ge=1)
    gradient_accumulation: int = Field(1, ge=1)
    learning_rate: float = Field(3e-4, gt=0)
    head_learning_rate: float | None = Field(
        None,
        gt=0,
        description="learning rate of the new classification head (default: learning_rate). Encoders "
        "whose last hidden states are small and alike (sentence-embedding checkpoints such as "
        "all-mpnet-base-v2) need a faster head to leave the all-O start",
    )
    warmup_ratio: float = Field(0.1, ge=0, lt=1)
    weight_decay: float = 0.01
    mixed_precision: Literal["auto", "no", "fp16", "bf16"] = "auto"
    frozen_base: Literal["auto", "fp32", "bf16"] = Field(
        "auto",
        description="dtype of a LoRA run's frozen base weights while it trains. auto: bf16 where the run "
        "trains under bf16 autocast on a CPU (autocast would cast them to bf16 in every step; LoRA "
        "weights, head and optimizer state stay fp32), fp32 elsewhere. The before and test scores "
        "always run on the fp32 weights, as the merged model is served",
    )
    seed: int = 42
    batching: Batching = Field(
        "length_buckets",
        description=(
            "length_buckets: batches of similar lengths from small random buckets, the fastest"
            " (loraner.train.sampling); length_chunks: random batches run as length-sorted chunks, the"
            " stock gradient with less padding (loraner.train.chunking); random: the stock Trainer"
        ),
    )
    chunk_overhead_tokens: int = Field(
        32, ge=0, description="length_chunks: the cost of one more chunk, in tokens"
    )
    length_bucket_batches: int = Field(8, ge=1, description="length_buckets: batches per bucket")
    logging_steps: int = 50
    report_to: list[Literal["tensorboard", "mlflow"]] = Field(
        default_factory=list,
        description="tracking backends the Trainer logs to, with loraner's own scores, config and files "
        "added to the run (loraner.train.tracking): none (default), tensorboard, mlflow or a list; each an "
        "extra. MLflow's store is RUN/mlflow.db unless MLFLOW_TRACKING_URI is set",
    )
    max_steps: int = -1
    save_total_limit: int = 2
    threads: int | None = None

    @field_validator("report_to", mode="before")
    @classmethod
    def _report_to(cls, value: Any) -> Any:
        """``none``, one backend, or a list of them (``none`` alone, as transformers spells it)."""
        if isinstance(value, str):
            value = [] if value == "none" else [value]
        return list(dict.fromkeys(value)) if isinstance(value, list) else value


class ReportConfig(Strict):
    """``report:``: sample notes in ``report.md`` and whether the untrained model is scored first."""

    samples: int = 5
    evaluate_before: bool = True


class ExperimentConfig(Strict):
    """A whole training config (a preset or a YAML file): ``data``, ``model``, ``lora``, ``training`` and
    ``report``; unknown keys anywhere are errors."""

    name: str = "loraner"
    data: DataConfig
    model: ModelConfig = Field(default_factory=ModelConfig)
    lora: LoraSettings = Field(default_factory=LoraSettings)
    training: TrainingConfig = Field(default_factory=TrainingConfig)
    report: ReportConfig = Field(default_factory=ReportConfig)


def parse_override(item: str) -> tuple[list[str], Any]:
    if "=" not in item:
        raise ConfigError(f"override {item!r} is not key=value (e.g. training.epochs=3)")
    key, raw = item.split("=", 1)
    try:
        value = load_yaml(raw) if raw != "" else ""
    except yaml.YAMLError as exc:
        raise ConfigError(f"override {item!r}: value is not valid YAML ({exc})") from exc
    return key.strip().split("."), value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    for item in overrides:
        path, value = parse_override(item)
        node = raw
        for part in path[:-1]:
            child = node.setdefault(part, {})
            if not isinstance(child, dict):
                raise ConfigError(f"override {item!r}: {part!r} is not a section")
            node = child
        node[path[-1]] = value
    return raw


def presets_dir() -> Path:
    """The presets shipped inside the package (the repository's ``configs/`` links here)."""
    return Path(__file__).resolve().parent / "presets"


def preset_names() -> list[str]:
    return sorted(p.stem for p in presets_dir().glob("*.yaml"))


def find_config(path: str | Path) -> Path:
    """A YAML file, or the name of a shipped preset (``quickstart``, ``phi-minilm-lora``), so an
    installed wheel can train and evaluate without a checkout of the repository."""
    path = Path(path)
    if path.exists() or path.suffix or len(path.parts) > 1:
        return path
    shipped = presets_dir() / f"{path}.yaml"
    if shipped.exists():
        return shipped
    raise ConfigError(f"{path}: no such file, and not a preset (presets: {', '.join(preset_names())})")


def load_config(path: str | Path, overrides: list[str] | None = None) -> ExperimentConfig:
    """Read a YAML file or a shipped preset by name, apply ``key=value`` overrides, validate.
    Errors name the file and field."""
    path = find_config(path)
    try:
        raw = load_yaml(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError as exc:
        raise ConfigError(f"{path}: config file not found") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML: {exc}") from exc
    if not isinstance(raw, dict):
        raise ConfigError(f"{path}: top level must be a mapping")
    raw = apply_overrides(raw, overrides or [])
    data = raw.get("data")
    if isinstance(data, dict) and isinstance(data.get("path"), str):
        data["path"] = resolve_data_path(data["path"], path.parent)
    return validate_config(raw, str(path))


def resolve_data_path(value: str, config_dir: Path) -> str:
    """``../shared/...`` means the shared folder (``LORANER_SHARED`` overrides); ``./x`` is beside the
    config file; other relative paths are taken from the working directory."""
    if value.startswith("../shared/"):
        return str(shared_dir() / value.removeprefix("../shared/"))
    if value.startswith("./"):
        return str((config_dir / value).resolve())
    return value


def validate_config(raw: dict[str, Any], source: str = "config") -> ExperimentConfig:
    """``raw`` (a parsed YAML mapping) as an :class:`ExperimentConfig`; every problem is named by its key
    path in one :class:`~loraner.errors.ConfigError` prefixed by ``source``."""
    try:
        return ExperimentConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or '(top)'}: {err['msg']}" for err in exc.errors()
        )
        raise ConfigError(f"{source}: {problems}") from exc


def shared_dir() -> Path:
    """The read-only ``../shared`` folder beside the repo (override with ``LORANER_SHARED``)."""
    import os

    env = os.environ.get("LORANER_SHARED")
    if env:
        return Path(env)
    return Path(__file__).resolve().parents[3] / "shared"
