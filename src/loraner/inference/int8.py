"""An int8 base for many LoRA adapters: the base model's linear layers in int8 (all but the few that
:func:`kept_in_fp32` names), run by PyTorch's dynamically quantized linear kernel (FBGEMM / oneDNN:
weights int8 per output channel, activations quantized per call), while everything an adapter brings
(LoRA A and B, the classifier head, its biases) stays fp32.

:class:`Int8Linear` is an ``nn.Linear`` to PEFT, so the pool wraps it in LoRA as it wraps any linear
layer, before or after other adapters, and PEFT's mixed batches (``adapter_names``) work unchanged. It
calls the quantized operators directly (``torch.ops.quantized``, the kernels behind
``torch.ao.nn.quantized.dynamic.Linear``), not the deprecated ``torch.ao.quantization`` front end.
Imported by the pool only when an int8 base is asked for (this module imports torch).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import Any

import torch


class Int8Linear(torch.nn.Linear):
    """``linear``'s weight quantized to int8, per output channel, symmetric. ``weight`` is an empty
    fp32 tensor kept for PEFT, which reads the device and dtype of a base layer's weight to place the
    LoRA matrices (fp32 here); ``bias`` stays the fp32 bias (the kernel holds a copy), so adapters that
    trained their own biases are compared with it."""

    def __init__(self, linear: torch.nn.Linear) -> None:
        torch.nn.Module.__init__(self)  # not nn.Linear's: it would allocate an fp32 weight
        self.in_features, self.out_features = linear.in_features, linear.out_features
        weight = linear.weight.detach().float()
        scales = (weight.abs().amax(dim=1) / 127).clamp(min=1e-12).double()
        zero_points = torch.zeros(weight.shape[0], dtype=torch.long)
        qweight = torch.quantize_per_channel(weight, scales, zero_points, 0, torch.qint8)
        bias = None if linear.bias is None else linear.bias.detach().float().clone()
        self._packed: Any = torch.ops.quantized.linear_prepack(qweight, bias)
        self.weight = torch.nn.Parameter(torch.empty(0), requires_grad=False)
        self.bias = None if bias is None else torch.nn.Parameter(bias, requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # reduce_range: 7-bit activations, as torch.ao's dynamic Linear does, so the AVX2 kernel's
        # 16-bit intermediate sums cannot saturate.
        return torch.ops.quantized.linear_dynamic(x.float(), self._packed, True)

    def extra_repr(self) -> str:
        return f"in_features={self.in_features}, out_features={self.out_features}, int8"


def kept_in_fp32(layers: Sequence[tuple[str, int, int]]) -> list[str]:
    """Of an encoder's linear layers, ``(name, input width, output width)`` in forward order, the names int8
    keeps in fp32: the feed-forward output projections of the upper half of the encoder, found by shape
    (back to the hidden size, the most common output width, from a wider input), so any encoder works.

    Their inputs carry the few very large activations (outlier features) of trained encoders, and one
    scale per tensor for a whole activation leaves the ordinary values a handful of int8 steps. With
    these 6 of MPNet-base's 97 products in fp32, its ONNX int8 F1 drop on 1,000 CoNLL dev sentences went
    from 0.74 to -0.04 points (agreement with fp32 0.967 to 0.980) for about 8 % of the int8 speed; the
    lower half's did not help. Used by the PyTorch int8 base here and the ONNX int8 export."""
    if not layers:
        return []
    hidden = Counter(outputs for _, _, outputs in layers).most_common(1)[0][0]
    down = [name for name, inputs, outputs in layers if outputs == hidden and inputs > hidden]
    return down[len(down) // 2 :]


def quantize_linears(model: torch.nn.Module, skip: str) -> int:
    """Every ``nn.Linear`` of ``model`` except those under a module named ``skip`` (the head) and those
    :func:`kept_in_fp32` names, replaced in place by an :class:`Int8Linear`; returns how many. Call it
    before any LoRA wraps a layer."""
    linears = {
        f"{parent_name}.{name}": (parent, name, child)
        for parent_name, parent in model.named_modules()
        if skip not in parent_name.split(".")
        for name, child in parent.named_children()
        if type(child) is torch.nn.Linear and name != skip
    }
    kept = set(kept_in_fp32([(key, c.in_features, c.out_features) for key, (_, _, c) in linears.items()]))
    for key, (parent, name, child) in linears.items():
        if key not in kept:
            setattr(parent, name, Int8Linear(child))
    return len(linears) - len(kept)
