"""The bench's LoRA adapters, built once into ``bench/.cache/adapters/``, and their exports.

The adapters are made, not trained: PEFT LoRA r=16, alpha 32 on query and value (the Few-NERD preset)
on the bench's base model, ``lora_B`` drawn small and random (PEFT starts it at zero, which would leave
the encoder unchanged) and a random classifier head per adapter over one of four label sets. Each is
saved as training saves one (``save_pretrained``, the tokenizer, ``loraner.json`` with the base's
fingerprint), with the first one also merged into a plain model. The set's root also holds, each built
once under its own lock: the merged model exported to ONNX int8 (``merged_onnx_int8``), every adapter
exported with an int8 base graph for ONNX Runtime (``onnx_adapters``: ``loraner export onnx-adapters``)
and folders of the first N adapters for ``loraner serve --adapters`` (``AdapterSet.folder``). The
``adapters`` workload measures them; the ``soak`` workload churns them through a server.
"""

from __future__ import annotations

import gc
import hashlib
import json
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench.lib.common import Context
from bench.lib.models import BenchBase, build_lock
from loraner.modeldir import FINGERPRINT_SCHEME

LORA_R, LORA_ALPHA, LORA_TARGETS = 16, 32, ("query", "value")  # the Few-NERD preset
LORA_B_STD = 0.02  # lora_B's random init: every adapter really changes the encoder's output
HEAD_STD = 0.02
N_ADAPTERS = 16  # built, and the most loaded at once (MultiAdapterPredictor's default max_loaded)


def iob(types: Sequence[str]) -> list[str]:
    return ["O"] + [f"{p}-{t}" for t in types for p in ("B", "I")]


def label_sets(fewnerd: list[str]) -> list[tuple[str, list[str]]]:
    """Four label sets, so that adapters with different heads share the mixed batches."""
    coarse = sorted({label[2:].split("-")[0] for label in fewnerd if label != "O"})
    return [
        ("fewnerd", fewnerd),
        ("conll", iob(["PER", "LOC", "ORG", "MISC"])),
        ("phi", iob(["NAME", "DATE", "PHONE", "ADDRESS", "ID", "AGE"])),
        ("coarse", iob(coarse)),
    ]


# --- the adapters -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class AdapterSet:
    root: Path
    dirs: dict[str, Path]  # name -> adapter directory, in build order
    merged: Path  # the first adapter merged into the base (merge_adapter)
    info: dict[str, Any]  # sizes, label counts, LoRA settings

    @property
    def names(self) -> list[str]:
        return list(self.dirs)

    def weight_bytes(self, name: str) -> int:
        return int(self.info["weight_bytes"][name])

    def folder(self, count: int, source: str = "all") -> Path:
        """A folder holding the first ``count`` adapters (symlinks into ``root/source``: the PEFT adapters,
        or their ONNX export's ``adapters``), for ``loraner serve --adapters``."""
        prefix = "" if source == "all" else source.replace("/", "-") + "-"
        folder = self.root / "sets" / f"{prefix}first-{count}"
        if not folder.exists():
            staging = folder.with_name(f"{folder.name}.tmp")
            staging.mkdir(parents=True, exist_ok=True)
            for name in self.names[:count]:
                link = staging / name
                if not link.exists():
                    link.symlink_to(Path("..") / ".." / source / name)
            staging.rename(folder)
        return folder


def adapters_key(base: BenchBase, sets: list[tuple[str, list[str]]]) -> str:
    spec = {
        "base": base.torch_dir.parent.name,  # the base's own spec key
        "r": LORA_R,
        "alpha": LORA_ALPHA,
        "targets": LORA_TARGETS,
        "b_std": LORA_B_STD,
        "head_std": HEAD_STD,
        "n": N_ADAPTERS,
        "sets": sets,
        "fingerprint_scheme": FINGERPRINT_SCHEME,
        "v": 1,
    }
    return hashlib.sha1(json.dumps(spec, sort_keys=True).encode()).hexdigest()[:10]


def build_adapters(base: BenchBase, cache: Path, log: Any = print, seed: int = 0) -> AdapterSet:
    """The cached adapters (built once: a few seconds each on the base shape) and the merged model."""
    sets = label_sets(base.labels)
    root = cache / "adapters" / f"{base.name}-{adapters_key(base, sets)}"
    done = root / "done.json"
    with build_lock(root.with_suffix(".lock")):
        if not done.exists():
            log(f"building {N_ADAPTERS} LoRA adapters on {base.name} in {root} (once; later runs reuse it)")
            info = make_adapters(base, root, sets, seed)
            done.write_text(json.dumps(info, indent=2), encoding="utf-8")
    info = json.loads(done.read_text(encoding="utf-8"))
    dirs = {name: root / "all" / name for name in info["adapters"]}
    return AdapterSet(root, dirs, root / "merged", info)


def make_adapters(
    base: BenchBase, root: Path, sets: list[tuple[str, list[str]]], seed: int
) -> dict[str, Any]:
    import shutil

    import torch
    from peft import LoraConfig, TaskType, get_peft_model

    from loraner.export.merge import merge_adapter
    from loraner.inference.backends import load_token_classifier
    from loraner.modeldir import ModelMeta, base_fingerprint, load_tokenizer, make_readable, write_meta

    warnings.filterwarnings("ignore", message=".*is_gradient_checkpointing.*is deprecated")
    shutil.rmtree(root, ignore_errors=True)
    base_dir = base.torch_dir.resolve()
    model = load_token_classifier(base_dir)
    fingerprint = base_fingerprint(model)  # the base before LoRA wraps it, as training records it
    tokenizer = load_tokenizer(base_dir)
    hidden = model.config.hidden_size
    names, weight_bytes, dir_bytes, labels_of, delta = [], {}, {}, {}, None
    for i in range(N_ADAPTERS):
        set_name, labels = sets[i % len(sets)]
        name = f"a{i:02d}-{set_name}"
        torch.manual_seed(seed + i)
        head = torch.nn.Linear(hidden, len(labels))
        with torch.no_grad():
            head.weight.normal_(0.0, HEAD_STD)
            head.bias.zero_()
        model.classifier = head
        model.num_labels = len(labels)
        model.config.id2label = dict(enumerate(labels))
        model.config.label2id = {label: k for k, label in enumerate(labels)}
        config = LoraConfig(
            task_type=TaskType.TOKEN_CLS,
            r=LORA_R,
            lora_alpha=LORA_ALPHA,
            lora_dropout=0.0,
            target_modules=list(LORA_TARGETS),
            modules_to_save=["classifier"],
        )
        peft_model = get_peft_model(model, config)
        with torch.no_grad():
            for key, param in peft_model.named_parameters():
                if "lora_B" in key:
                    param.normal_(0.0, LORA_B_STD)
        if delta is None:
            delta = lora_delta(peft_model)
        out = root / "all" / name
        peft_model.save_pretrained(str(out))
        tokenizer.save_pretrained(str(out))
        meta = ModelMeta(
            name=name,
            labels=labels,
            word_split="conll",
            data_format="conll",
            lora=True,
            base_model=str(base_dir),
            base_fingerprint=fingerprint,
        )
        write_meta(out, meta)
        make_readable(out)
        model = peft_model.unload()  # the base again, LoRA layers removed (not merged)
        if any("lora_" in key for key, _ in model.named_parameters()):
            raise RuntimeError("PEFT's unload() left LoRA layers in the base")
        names.append(name)
        weights = out / "adapter_model.safetensors"
        weight_bytes[name] = weights.stat().st_size
        dir_bytes[name] = sum(f.stat().st_size for f in out.rglob("*") if f.is_file())
        labels_of[name] = len(labels)
    del model
    gc.collect()
    merge_adapter(root / "all" / names[0], root / "merged")
    return {
        "adapters": names,
        "labels": labels_of,
        "weight_bytes": weight_bytes,
        "dir_bytes": dir_bytes,
        "merged_from": names[0],
        "lora": {"r": LORA_R, "alpha": LORA_ALPHA, "targets": list(LORA_TARGETS), "lora_B_std": LORA_B_STD},
        "first_layer_query_delta": delta,
    }


def lora_delta(peft_model: Any) -> dict[str, float]:
    """How much the first adapter changes the first query matrix: ||scale * B A|| / ||W||."""
    import torch

    for _, module in peft_model.named_modules():
        if hasattr(module, "lora_A") and "default" in getattr(module, "lora_A", {}):
            a = module.lora_A["default"].weight
            b = module.lora_B["default"].weight
            scale = module.scaling["default"]
            w = module.base_layer.weight
            with torch.no_grad():
                rel = (scale * (b @ a)).norm() / w.norm()
            return {"relative_norm": round(float(rel), 4)}
    return {}


def merged_onnx_int8(ctx: Context, aset: AdapterSet) -> Path:
    """The merged model exported to ONNX int8 (``loraner export onnx --quantize int8``), cached. No
    agreement floor: the bench measures the int8 model's agreement, it does not gate on it (random
    adapters on the quick run's tiny base agree less than trained ones)."""
    from loraner.export.onnx import export_onnx

    out = aset.root / "merged-onnx-int8"
    with build_lock(out.with_suffix(".lock")):
        if not (out / "done").exists():
            ctx.log(f"exporting the merged model to ONNX int8 in {out} (once)")
            export_onnx(aset.merged, out, quantize="int8", int8_floor=0.0, threads=ctx.threads)
            (out / "done").write_text("ok", encoding="utf-8")
    return out


ONNX_ADAPTERS = "onnx-int8-adapters"  # under the adapter set's root: the export of all its adapters


def onnx_adapters(ctx: Context, base: BenchBase, aset: AdapterSet) -> Path:
    """Every adapter of the set exported with an int8 base graph (``loraner export onnx-adapters``),
    cached. No agreement floor, as for the merged export: the bench measures agreement."""
    from loraner.export.onnx_adapters import export_onnx_adapters

    out = aset.root / ONNX_ADAPTERS
    with build_lock(out.with_suffix(".lock")):
        if not (out / "done").exists():
            ctx.log(f"exporting the base and {len(aset.names)} adapters to ONNX int8 in {out} (once)")
            export_onnx_adapters(
                base.torch_dir.resolve(), aset.dirs, out, quantize="int8", int8_floor=0.0, threads=ctx.threads
            )
            (out / "done").write_text("ok", encoding="utf-8")
    return out


def onnx_serve_args(ctx: Context, base: BenchBase, aset: AdapterSet, count: int) -> list[str]:
    """``loraner serve`` options for ONNX Runtime's route, as the 1 GB box serves adapters: the
    exported int8 base graph and the first ``count`` adapters in ONNX Runtime's form."""
    graph = onnx_adapters(ctx, base, aset)
    folder = aset.folder(count, source=f"{ONNX_ADAPTERS}/adapters")
    return [
        "--base",
        str(graph),
        "--adapters",
        str(folder.resolve()),
        "--backend",
        "onnx",
        "--base-quantization",
        "int8",
    ]


def agreement_of(got: Sequence[Any], want: Sequence[Any]) -> dict[str, Any]:
    """Texts with identical entities, and entity F1 of ``got`` against ``want`` (exact span and type)."""
    same = sum(entity_keys(g) == entity_keys(w) for g, w in zip(got, want, strict=True))
    found = {(i, *k) for i, g in enumerate(got) for k in entity_keys(g)}
    wanted = {(i, *k) for i, w in enumerate(want) for k in entity_keys(w)}
    both = len(found & wanted)
    f1 = 2 * both / (len(found) + len(wanted)) if found or wanted else 1.0
    return {
        "texts": len(want),
        "same_entities": same,
        "entities_fp32": len(wanted),
        "entities_int8": len(found),
        "entity_f1": round(f1, 4),
    }


def entity_keys(entities: Sequence[Any]) -> list[tuple[int, int, str]]:
    return [(e.start, e.end, e.type) for e in entities]
