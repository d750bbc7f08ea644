"""Export: merging adapters, ONNX."""

from loraner.export.merge import META_FILE, merge_adapter, read_meta

__all__ = ["META_FILE", "export_onnx", "merge_adapter", "read_meta"]


def __getattr__(name: str) -> object:  # lazy, so `import loraner.export` stays light
    if name == "export_onnx":
        from loraner.export.onnx import export_onnx

        return export_onnx
    raise AttributeError(name)
