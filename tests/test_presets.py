"""Presets ship inside the package: they validate, load by name, and are in the built wheel."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from loraner.deid.config import load_deid_config
from loraner.errors import ConfigError
from loraner.settings import find_config, load_config, preset_names, presets_dir

REPO = Path(__file__).resolve().parents[1]
EXPERIMENTS = [name for name in preset_names() if name != "deid"]


def test_repository_configs_folder_is_the_shipped_presets():
    assert (REPO / "configs").resolve() == presets_dir()
    assert {"quickstart", "conll-minilm-lora", "phi-minilm-lora", "fewnerd-roberta-lora", "deid"} <= set(
        preset_names()
    )


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_experiment_preset_validates_by_name_and_by_path(name):
    by_name = load_config(name)
    by_path = load_config(REPO / "configs" / f"{name}.yaml")
    assert by_name == by_path
    assert by_name.name == name


def test_deid_preset_loads_by_name():
    assert load_deid_config("deid") == load_deid_config(REPO / "configs" / "deid.yaml")


def test_when_name_is_neither_file_nor_preset_then_error_lists_presets():
    with pytest.raises(
        ConfigError, match=r"quickstrat: no such file, and not a preset \(presets: .*quickstart"
    ):
        load_config("quickstrat")
    # paths are never taken for preset names
    assert find_config("runs/x.yaml") == Path("runs/x.yaml")


def test_built_wheel_contains_the_presets(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "-q",
            "-w",
            str(tmp_path),
            str(REPO),
        ],
        check=True,
        capture_output=True,
    )
    (wheel,) = tmp_path.glob("loraner-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    assert {f"loraner/presets/{n}.yaml" for n in preset_names()} <= names
    assert "loraner/serve/static/index.html" in names or any(
        n.startswith("loraner/serve/static/") for n in names
    )
