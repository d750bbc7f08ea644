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


@pytest.mark.parametrize("typed", ["no", "off", "yes", "on"])
def test_set_keeps_the_string_the_user_typed_for_a_string_field(typed):
    from loraner.settings import apply_overrides

    raw = apply_overrides(
        {"data": {"format": "synth"}}, [f"training.mixed_precision={typed}", f"name={typed}"]
    )
    assert raw["training"]["mixed_precision"] == typed and raw["name"] == typed


def test_set_no_is_accepted_for_mixed_precision_and_yes_off_still_work_for_booleans():
    from loraner.settings import load_config

    cfg = load_config(
        "quickstart", ["training.mixed_precision=no", "lora.enabled=off", "model.label_all_subwords=yes"]
    )
    assert cfg.training.mixed_precision == "no"
    assert cfg.lora.enabled is False and cfg.model.label_all_subwords is True


def test_yaml_presets_read_yes_no_on_off_as_strings_for_string_fields(tmp_path):
    from loraner.settings import load_config

    path = tmp_path / "p.yaml"
    path.write_text("name: on\ndata: {format: synth}\ntraining: {mixed_precision: no}\nlora: {enabled: no}\n")
    cfg = load_config(path)
    assert cfg.name == "on" and cfg.training.mixed_precision == "no" and cfg.lora.enabled is False
