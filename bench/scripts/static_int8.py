"""Static (calibrated) vs dynamic int8 ONNX on the RoBERTa-base shape (issue 15's AVX2 question).

    python -m bench.scripts.static_int8 [--threads 2] [--sentences 200] [--repeats 3] [--trained DIR]

Dynamic int8 (what ``loraner export onnx --quantize int8`` makes) quantizes each activation on every
call; static int8 fixes activation scales from calibration sentences, removing that work. Both run
interleaved on the same CoNLL sentences; with ``--trained`` (a trained merged model) the entity F1 of
each on the CoNLL test set is compared with fp32's. Prints a table and writes
``bench/results/static_int8.json``; loraner keeps dynamic int8 unless static is faster at the same F1.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import Any

from bench.lib.common import CACHE_DIR, FULL, RESULTS_DIR, Context, cpu_line, print_table, write_result
from bench.lib.data import read_conll_examples, sentence_set
from bench.lib.models import build_models


def calibration_reader(predictor: Any, texts: list[str]) -> Any:
    """onnxruntime's CalibrationDataReader over the windows loraner would run for ``texts``."""
    import numpy as np
    from onnxruntime.quantization import CalibrationDataReader

    from loraner.inference.encoding import pad

    windows = predictor.windows(predictor.tokenize(texts))

    class Windows(CalibrationDataReader):
        def __init__(self) -> None:
            self.items = iter([pad([w.ids], predictor.pad_id) for w in windows])

        def get_next(self) -> dict[str, np.ndarray] | None:
            item = next(self.items, None)
            if item is None:
                return None
            ids, mask = item
            return {"input_ids": ids, "attention_mask": mask}

    return Windows()


def quantize_static_int8(fp32_dir: Path, out_dir: Path, calibration: list[str], threads: int) -> Path:
    """A static int8 copy of ``fp32_dir`` (QDQ, per-channel weights, MinMax calibration)."""
    import shutil

    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    from loraner.inference import NERPredictor

    if (out_dir / "model.onnx").exists():
        return out_dir
    shutil.copytree(fp32_dir, out_dir, dirs_exist_ok=True)
    (out_dir / "model.onnx").unlink()
    pre = out_dir / "model.pre.onnx"
    quant_pre_process(str(fp32_dir / "model.onnx"), str(pre), skip_symbolic_shape=True)
    predictor = NERPredictor.from_pretrained(fp32_dir, backend="onnx", threads=threads)
    quantize_static(
        str(pre),
        str(out_dir / "model.onnx"),
        calibration_reader(predictor, calibration),
        quant_format=QuantFormat.QDQ,
        per_channel=True,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        op_types_to_quantize=["MatMul", "Gemm"],
    )
    pre.unlink()
    return out_dir


def throughput(dirs: dict[str, Path], texts: list[str], repeats: int, threads: int) -> dict[str, Any]:
    from loraner.inference import NERPredictor

    predictors = {
        k: NERPredictor.from_pretrained(d, backend="onnx", threads=threads) for k, d in dirs.items()
    }
    for p in predictors.values():
        p.predict_batch(texts[:8])
    seconds: dict[str, list[float]] = {k: [] for k in dirs}
    for _ in range(repeats):
        for name, p in predictors.items():  # interleaved: load changes hit every variant alike
            started = time.perf_counter()
            p.predict_batch(texts)
            seconds[name].append(time.perf_counter() - started)
    return {
        k: {"seconds": v, "sentences_per_s": round(len(texts) / statistics.median(v), 1)}
        for k, v in seconds.items()
    }


def f1_check(trained: Path, cache: Path, threads: int, sample: list[str]) -> dict[str, Any]:
    from loraner.data.examples import as_span_example
    from loraner.export.onnx import export_onnx
    from loraner.inference import NERPredictor
    from loraner.scores import entity_f1

    root = cache / "static-int8-trained"
    fp32 = root / "onnx-fp32"
    if not (fp32 / "model.onnx").exists():
        export_onnx(trained, fp32, threads=threads)
    dynamic = root / "onnx-int8"
    if not (dynamic / "model.onnx").exists():
        export_onnx(trained, dynamic, quantize="int8", threads=threads)
    static = quantize_static_int8(fp32, root / "onnx-int8-static", sample, threads)
    examples = [as_span_example(ex) for ex in read_conll_examples("test")]
    texts, gold = [ex.text for ex in examples], [ex.spans for ex in examples]
    out = {}
    for name, d in (("fp32", fp32), ("dynamic int8", dynamic), ("static int8", static)):
        predicted = NERPredictor.from_pretrained(d, backend="onnx", threads=threads).predict_batch(texts)
        out[name] = round(entity_f1(gold, predicted), 4)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--sentences", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--trained", type=Path, default=None)
    args = parser.parse_args(argv)
    print(cpu_line())
    ctx = Context(FULL, args.threads, CACHE_DIR, RESULTS_DIR, trained_model=Path(), quick=False)
    models = build_models(ctx)
    from loraner.modeldir import load_tokenizer

    tokenizer = load_tokenizer(models.torch_dir)
    texts = sentence_set(tokenizer, args.sentences, seed=1).texts
    calibration = [" ".join(ex.tokens) for ex in (read_conll_examples("dev") or [])[:64]] or texts[:64]
    static_dir = quantize_static_int8(
        models.onnx_fp32_dir, models.onnx_int8_dir.with_name("onnx-int8-static"), calibration, args.threads
    )
    dirs = {
        "onnx fp32": models.onnx_fp32_dir,
        "dynamic int8": models.onnx_int8_dir,
        "static int8": static_dir,
    }
    speed = throughput(dirs, texts, args.repeats, args.threads)
    base = speed["dynamic int8"]["sentences_per_s"]
    rows = [[k, v["sentences_per_s"], round(v["sentences_per_s"] / base, 2)] for k, v in speed.items()]
    print_table(
        f"Static vs dynamic int8, {models.name}, {len(texts)} sentences",
        ["variant", "sent/s", "x dynamic"],
        rows,
    )
    result: dict[str, Any] = {"model": models.describe(), "sentences": len(texts), "throughput": speed}
    if args.trained is not None:
        result["f1"] = f1_check(args.trained, CACHE_DIR, args.threads, calibration)
        print_table("CoNLL test entity F1", ["variant", "F1"], [[k, v] for k, v in result["f1"].items()])
    write_result(ctx, "static_int8", result)
    return 0


if __name__ == "__main__":
    sys.exit(main())
