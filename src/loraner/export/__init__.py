"""Export: merging adapters into their base, ONNX (fp32 or int8) with parity checks."""

from loraner.export.merge import merge_adapter

__all__ = ["export_onnx", "merge_adapter"]


def __getattr__(name: str) -> object:  # lazy: ONNX export imports torch and onnx, merging does not need them
    if name == "export_onnx":
        from loraner.export.onnx import export_onnx

        return export_onnx
    raise AttributeError(name)
