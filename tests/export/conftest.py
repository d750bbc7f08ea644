"""Export fixtures: the tiny model exported once per session (the same cache tests/inference uses)."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(scope="session")
def tiny_onnx_dir(tmp_path_factory: pytest.TempPathFactory, tiny_roberta_dir: Path) -> Path:
    from loraner.export.onnx import export_onnx

    out = tmp_path_factory.getbasetemp() / "tiny-onnx-fp32"
    if not (out / "model.onnx").exists():
        export_onnx(tiny_roberta_dir, out)
    return out
