"""The benchmark models, built once into ``bench/.cache``.

* A RoBERTa-base-shaped token classifier (12 layers, 768 hidden, 133 labels: the 66 Few-NERD fine types
  in IOB2) built from a config with random weights (weights do not change speed) and the run's
  tokenizer (``--tokenizer``, default the real roberta-base one in ../shared), saved as a plain
  Transformers directory, plus its ONNX fp32 and int8 exports made by
  :func:`loraner.export.onnx.export_onnx` and its OpenVINO fp32 and static int8 IRs made by
  :func:`loraner.export.openvino.export_openvino` (int8 calibrated on CoNLL dev sentences).
* In quick mode a 2-layer, 32-hidden RoBERTa with the same tokenizer and labels.

The int8 export normally refuses a model whose int8 entities disagree with fp32 (``int8_floor``). On a
random model that agreement means nothing, so these exports pass ``int8_floor=0``; int8 accuracy is
checked on the trained CoNLL model instead (see ``inference.accuracy``).
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.common import Context
from loraner.settings import shared_dir

# roberta-base's own config (RobertaConfig() defaults differ in three fields: 514 positions so that
# 512-token windows fit, one token type, eps 1e-5).
ROBERTA_BASE: dict[str, Any] = {
    "hidden_size": 768,
    "num_hidden_layers": 12,
    "num_attention_heads": 12,
    "intermediate_size": 3072,
    "max_position_embeddings": 514,
    "type_vocab_size": 1,
    "layer_norm_eps": 1e-5,
}
TINY: dict[str, Any] = {
    **ROBERTA_BASE,
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 2,
    "intermediate_size": 64,
}
MAX_LENGTH = 512
N_FEWNERD_TYPES = 66


@dataclass(frozen=True)
class BenchModels:
    name: str  # "roberta-base-shaped" or "tiny-roberta"
    torch_dir: Path
    onnx_fp32_dir: Path
    onnx_int8_dir: Path
    openvino_fp32_dir: Path | None  # None where OpenVINO is not installed (the [openvino] extra)
    openvino_int8_dir: Path | None
    labels: list[str]
    flops_per_token: float
    export: dict[str, Any]  # the export reports (parity, int8 agreement on the random model, sizes)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "torch_dir": str(self.torch_dir),
            "onnx_fp32_dir": str(self.onnx_fp32_dir),
            "onnx_int8_dir": str(self.onnx_int8_dir),
            "openvino_fp32_dir": str(self.openvino_fp32_dir),
            "openvino_int8_dir": str(self.openvino_int8_dir),
            "labels": len(self.labels),
            "gflop_per_token": round(self.flops_per_token / 1e9, 4),
            "export": self.export,
        }


def fewnerd_labels() -> list[str]:
    """``O`` plus ``B-``/``I-`` of each Few-NERD fine type (133 labels); placeholder type names when
    ../shared lacks labels.txt (only the count matters for speed)."""
    path = shared_dir() / "data" / "fewnerd" / "labels.txt"
    if path.exists():
        types = [
            t.strip() for t in path.read_text(encoding="utf-8").splitlines() if t.strip() not in ("", "O")
        ]
    else:
        types = [f"type-{i:02d}" for i in range(N_FEWNERD_TYPES)]
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def flops_per_token(config: Any) -> float:
    """Matrix-multiply FLOPs per token of an encoder + token head (attention scores left out)."""
    h, i, layers = config.hidden_size, config.intermediate_size, config.num_hidden_layers
    return 2.0 * layers * (4 * h * h + 2 * h * i) + 2.0 * h * config.num_labels


def build_torch_model(out: Path, tiny: bool, labels: list[str], tokenizer_dir: Path, seed: int = 0) -> Path:
    import torch
    from transformers import AutoTokenizer, RobertaConfig, RobertaForTokenClassification

    source = tokenizer_dir
    if not source.exists():
        raise FileNotFoundError(
            f"{source}: a RoBERTa tokenizer is needed: pass --tokenizer DIR, or set LORANER_SHARED to the "
            "folder holding models/roberta-base-tokenizer"
        )
    tokenizer = AutoTokenizer.from_pretrained(str(source), add_prefix_space=True)
    tokenizer.model_max_length = MAX_LENGTH  # roberta-base's; pipeline() truncates at it
    torch.manual_seed(seed)
    config = RobertaConfig(
        **(TINY if tiny else ROBERTA_BASE),
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        num_labels=len(labels),
        id2label=dict(enumerate(labels)),
        label2id={label: i for i, label in enumerate(labels)},
    )
    model = RobertaForTokenClassification(config).eval()
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tokenizer.save_pretrained(str(out))
    return out


def tokenizer_digest(tokenizer_dir: Path) -> str:
    """The tokenizer's files, hashed: a model cached with another tokenizer is another model."""
    digest = hashlib.sha1()
    for path in sorted(p for p in tokenizer_dir.iterdir() if p.is_file()):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def spec_key(tiny: bool, labels: list[str], tokenizer_dir: Path) -> str:
    from loraner import __version__

    spec = {"shape": TINY if tiny else ROBERTA_BASE, "labels": labels, "loraner": __version__, "v": 1}
    if tokenizer_dir.exists():
        spec["tokenizer"] = tokenizer_digest(tokenizer_dir)
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def model_root(cache: Path, tiny: bool, labels: list[str], tokenizer_dir: Path) -> tuple[str, Path]:
    name = "tiny-roberta" if tiny else "roberta-base-shaped"
    return name, cache / "models" / f"{name}-{spec_key(tiny, labels, tokenizer_dir)}"


def ensure_torch_model(root: Path, tiny: bool, labels: list[str], tokenizer_dir: Path) -> Path:
    """``root/torch``, built unless an earlier build finished it (``torch.done`` or the whole set's
    ``done.json``), under its own lock: a run that needs only it does not wait for another run's exports."""
    torch_dir = root / "torch"
    marker = root / "torch.done"
    with build_lock(root.with_suffix(".torch.lock")):
        if not (marker.exists() or (root / "done.json").exists()):
            shutil.rmtree(torch_dir, ignore_errors=True)
            build_torch_model(torch_dir, tiny, labels, tokenizer_dir)
            marker.write_text("", encoding="utf-8")
    return torch_dir


@dataclass(frozen=True)
class BenchBase:
    """The PyTorch model alone (the adapters workload needs no ONNX export)."""

    name: str
    torch_dir: Path
    labels: list[str]
    flops_per_token: float


def build_base(ctx: Context) -> BenchBase:
    """The cached PyTorch model of :func:`build_models`, building only it when missing."""
    from transformers import AutoConfig

    labels = fewnerd_labels()
    tiny = ctx.sizes.tiny_model
    name, root = model_root(ctx.cache, tiny, labels, ctx.tokenizer)
    if not ((root / "torch.done").exists() or (root / "done.json").exists()):
        ctx.log(f"building {name} (PyTorch only) in {root} (once; later runs reuse it)")
    torch_dir = ensure_torch_model(root, tiny, labels, ctx.tokenizer)
    config = AutoConfig.from_pretrained(str(torch_dir))
    return BenchBase(name, torch_dir, labels, flops_per_token(config))


def build_models(ctx: Context) -> BenchModels:
    """The cached models, building (about 3 minutes for the base shape) what is missing."""
    from transformers import AutoConfig

    from loraner.export.onnx import export_onnx

    labels = fewnerd_labels()
    tiny, threads = ctx.sizes.tiny_model, ctx.threads
    name, root = model_root(ctx.cache, tiny, labels, ctx.tokenizer)
    torch_dir, fp32_dir, int8_dir = root / "torch", root / "onnx-fp32", root / "onnx-int8"
    done = root / "done.json"
    ensure_torch_model(root, tiny, labels, ctx.tokenizer)
    with build_lock(root.with_suffix(".lock")):  # one builder at a time when runs overlap
        if not done.exists():
            ctx.log(f"building {name}'s exports in {root} (once; later runs reuse them)")
            shutil.rmtree(fp32_dir, ignore_errors=True)
            shutil.rmtree(int8_dir, ignore_errors=True)
            fp32 = export_onnx(torch_dir, fp32_dir, threads=threads)
            # Random weights: int8-vs-fp32 entity agreement is meaningless here, hence floor 0.
            int8 = export_onnx(torch_dir, int8_dir, quantize="int8", int8_floor=0.0, threads=threads)
            report = {
                "fp32_max_abs_logit_diff_vs_torch": fp32.fp32_max_abs_diff,
                "int8": int8.int8,
                "int8_floor": "0 (random weights: agreement is not meaningful; see the accuracy check)",
            }
            done.write_text(json.dumps(report, indent=2), encoding="utf-8")
        openvino = build_openvino(root, torch_dir, ctx)
    config = AutoConfig.from_pretrained(str(torch_dir))
    export = json.loads(done.read_text(encoding="utf-8"))
    if openvino is not None:
        export["openvino_int8"] = json.loads((root / "openvino.done").read_text(encoding="utf-8"))
    return BenchModels(
        name=name,
        torch_dir=torch_dir,
        onnx_fp32_dir=fp32_dir,
        onnx_int8_dir=int8_dir,
        openvino_fp32_dir=openvino[0] if openvino else None,
        openvino_int8_dir=openvino[1] if openvino else None,
        labels=labels,
        flops_per_token=flops_per_token(config),
        export=export,
    )


def build_openvino(root: Path, torch_dir: Path, ctx: Context) -> tuple[Path, Path] | None:
    """``root/openvino-fp32`` and ``root/openvino-int8`` (built once; ``openvino.done`` holds the int8
    report), int8 calibrated on ``openvino_calibration`` CoNLL dev sentences (generated ones without
    ../shared). None where the [openvino] extra is missing. The caller holds the build lock."""
    import importlib.util

    if importlib.util.find_spec("openvino") is None or importlib.util.find_spec("nncf") is None:
        ctx.log("openvino/nncf not installed: no OpenVINO rows (pip install 'loraner[openvino]')")
        return None
    from bench.lib.data import read_conll_examples, sentence_set
    from loraner.export.openvino import export_openvino
    from loraner.modeldir import load_tokenizer

    fp32_dir, int8_dir, marker = root / "openvino-fp32", root / "openvino-int8", root / "openvino.done"
    if not marker.exists():
        ctx.log(f"building the OpenVINO IRs in {root} (once)")
        shutil.rmtree(fp32_dir, ignore_errors=True)
        shutil.rmtree(int8_dir, ignore_errors=True)
        count = ctx.sizes.openvino_calibration
        dev = read_conll_examples("dev") or []
        calibration = [" ".join(ex.tokens) for ex in dev[:count]] or sentence_set(
            load_tokenizer(torch_dir), count, seed=ctx.seed + 1
        ).texts
        export_openvino(torch_dir, fp32_dir, threads=ctx.threads)
        # Random weights: int8-vs-fp32 entity agreement is meaningless here, hence floor 0.
        int8 = export_openvino(
            torch_dir,
            int8_dir,
            quantize="int8",
            calibration_texts=calibration,
            int8_floor=0.0,
            threads=ctx.threads,
        )
        marker.write_text(json.dumps(int8.int8, indent=2), encoding="utf-8")
    return fp32_dir, int8_dir


def trained_int8(
    model_dir: Path, cache: Path, sample_texts: list[str], threads: int
) -> tuple[Path, dict[str, Any]]:
    """The int8 ONNX export of a trained model (cached by the model's path and modification time)."""
    from loraner.errors import ModelError
    from loraner.export.onnx import export_onnx

    stamp = max(p.stat().st_mtime for p in model_dir.iterdir())
    key = hashlib.sha1(f"{model_dir.resolve()}:{stamp}".encode()).hexdigest()[:10]
    out = cache / "trained" / key / "onnx-int8"
    report_file = out / "export_report.json"
    if not (out / "model.onnx").exists():
        shutil.rmtree(out, ignore_errors=True)
        source, target = model_dir.resolve(), out.resolve()
        # onnxruntime's shape inference writes temporary files into the working directory (and leaves
        # them behind when it fails): run the export from a scratch directory.
        with (
            tempfile.TemporaryDirectory(prefix="loraner-bench-") as scratch,
            working_directory(Path(scratch)),
        ):
            try:
                export_onnx(source, target, quantize="int8", sample_texts=sample_texts, threads=threads)
            except ModelError as exc:
                if "pre-quantization" not in str(exc):
                    raise
                # Symbolic shape inference fails on some BERT exports; the error's own advice.
                shutil.rmtree(target, ignore_errors=True)
                export_onnx(
                    source,
                    target,
                    quantize="int8",
                    sample_texts=sample_texts,
                    threads=threads,
                    preprocess=False,
                )
    return out, json.loads(report_file.read_text(encoding="utf-8"))


def trained_openvino_int8(model_dir: Path, cache: Path, threads: int) -> tuple[Path, dict[str, Any]] | str:
    """The static int8 OpenVINO IR of a trained model, calibrated and checked on its validation split
    (cached by the model's path and modification time); the export's refusal as a string."""
    from loraner.errors import LoranerError
    from loraner.export.openvino import export_openvino

    stamp = max(p.stat().st_mtime for p in model_dir.iterdir())
    key = hashlib.sha1(f"{model_dir.resolve()}:{stamp}".encode()).hexdigest()[:10]
    out = cache / "trained" / key / "openvino-int8"
    report_file = out / "openvino" / "export_report.json"
    if not (out / "openvino" / "model.xml").exists():
        shutil.rmtree(out, ignore_errors=True)
        try:
            export_openvino(model_dir, out, quantize="int8", threads=threads)
        except LoranerError as exc:
            return f"OpenVINO int8 export refused: {exc}"
    return out, json.loads(report_file.read_text(encoding="utf-8"))


@contextlib.contextmanager
def working_directory(path: Path) -> Iterator[None]:
    previous = Path.cwd()
    os.chdir(path)
    try:
        yield
    finally:
        os.chdir(previous)


@contextlib.contextmanager
def build_lock(path: Path) -> Iterator[None]:
    """An exclusive lock file (POSIX ``flock``; no locking where ``fcntl`` is missing)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w") as handle:
        try:
            import fcntl
        except ImportError:
            yield
            return
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
