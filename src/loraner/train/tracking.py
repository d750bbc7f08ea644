"""Tracked runs (``training.report_to``): the Trainer's own logging to TensorBoard or MLflow, and
loraner's numbers added to the same run once the run is scored.

What loraner adds is what ``metrics.json`` holds: the before/after scores, per-type F1, the
parameter-efficiency table, the epochs' validation scores, the timing; the config as parameters
(``config.training.learning_rate``...); ``metrics.json``, ``report.md``, the model cards, the config and
the plots as artifacts under ``loraner/`` (MLflow) or as text (TensorBoard).

Both write inside the run directory unless told otherwise, so a run is tracked offline:

* ``mlflow``: the store is ``sqlite:///RUN/mlflow.db`` with artifacts in ``RUN/mlartifacts``
  (``mlflow ui --backend-store-uri sqlite:///RUN/mlflow.db`` shows it); ``MLFLOW_TRACKING_URI`` set in
  the environment wins (a shared server). The experiment is the config's ``name``.
* ``tensorboard``: event files in ``RUN/tensorboard`` (``TENSORBOARD_LOGGING_DIR`` wins);
  ``tensorboard --logdir RUN/tensorboard``.

Each backend is an extra (``pip install 'loraner[mlflow]'``, ``'loraner[tensorboard]'``); a missing one
fails before training starts, naming the extra. Only the main process of a distributed run logs.
"""

from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from loraner.errors import ConfigError
from loraner.settings import ExperimentConfig

MLFLOW_DB = "mlflow.db"
MLFLOW_ARTIFACTS = "mlartifacts"
TENSORBOARD_DIR = "tensorboard"
# The packages each backend needs, and the extra that installs them.
BACKENDS = {"mlflow": ("mlflow", "mlflow"), "tensorboard": ("tensorboard", "tensorboard")}
# Files of a finished run logged as artifacts, where they exist.
ARTIFACTS = (
    "metrics.json",
    "report.md",
    "confusion_matrix.png",
    "confusion_matrix.csv",
    "curves.png",
    "adapter/README.md",
    "merged/README.md",
)
_METRIC_NAME = re.compile(r"[^0-9A-Za-z_\-. :/]")


def backends(cfg: ExperimentConfig) -> list[str]:
    """The backends ``training.report_to`` names (none: an empty list)."""
    return list(cfg.training.report_to)


def check_installed(cfg: ExperimentConfig) -> None:
    """Every backend asked for is installed, or a :class:`ConfigError` naming the extra."""
    for name in backends(cfg):
        module, extra = BACKENDS[name]
        if importlib.util.find_spec(module) is None:
            raise ConfigError(
                f"training.report_to: {name} needs the {module} package: pip install 'loraner[{extra}]'"
            )


def mlflow_uri(out: Path) -> str:
    """The MLflow store of a run: ``MLFLOW_TRACKING_URI`` if set, else a SQLite file inside ``out``."""
    return os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{(out / MLFLOW_DB).resolve()}"


def tensorboard_dir(out: Path) -> Path:
    return Path(os.environ.get("TENSORBOARD_LOGGING_DIR") or out / TENSORBOARD_DIR)


@contextlib.contextmanager
def tracked(cfg: ExperimentConfig, out: Path, main: bool = True) -> Iterator[None]:
    """Around a whole run (training, merge, scoring, :func:`log_results`): where the Trainer's callbacks
    write (the environment variables they read, restored after) and, for MLflow on the main process,
    the run itself: started here in an experiment whose artifacts are inside the run directory, so the
    Trainer logs into it and the scores after training land in the same run; ended here, ``FAILED`` if
    the run raised."""
    names = backends(cfg)
    if not names:
        yield
        return
    check_installed(cfg)
    env: dict[str, str] = {}
    if "mlflow" in names:
        env["MLFLOW_TRACKING_URI"] = mlflow_uri(out)
    if "tensorboard" in names:
        env["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(out))
    saved = {key: os.environ.get(key) for key in env}
    os.environ.update(env)
    try:
        with _mlflow_run(cfg, out) if "mlflow" in names and main else contextlib.nullcontext():
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@contextlib.contextmanager
def _mlflow_run(cfg: ExperimentConfig, out: Path) -> Iterator[None]:
    import mlflow
    from mlflow.tracking import MlflowClient

    uri = mlflow_uri(out)
    out.mkdir(parents=True, exist_ok=True)
    client = MlflowClient(tracking_uri=uri)
    experiment = client.get_experiment_by_name(cfg.name)
    if experiment is None:
        artifacts = (out / MLFLOW_ARTIFACTS).resolve().as_uri() if uri.startswith("sqlite:///") else None
        experiment_id = client.create_experiment(cfg.name, artifact_location=artifacts)
    else:
        experiment_id = experiment.experiment_id
    mlflow.set_tracking_uri(uri)
    mlflow.start_run(experiment_id=experiment_id, run_name=cfg.name)
    try:
        yield
    except BaseException:
        mlflow.end_run("FAILED")
        raise
    mlflow.end_run()


def flat_numbers(metrics: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """The numbers of ``metrics.json`` as flat names (``test.per_type.PER.f1``), without the config and
    the epochs (logged as series)."""
    found: dict[str, float] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if name in ("config", "epochs"):
            continue
        if isinstance(value, dict):
            found.update(flat_numbers(value, f"{name}."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            found[_METRIC_NAME.sub("_", name)] = float(value)
    return found


def flat_params(config: dict[str, Any], prefix: str = "config.") -> dict[str, str]:
    """The config as MLflow parameters: one per leaf, ``config.training.learning_rate``."""
    params: dict[str, str] = {}
    for key, value in config.items():
        if isinstance(value, dict):
            params.update(flat_params(value, f"{prefix}{key}."))
        else:
            params[f"{prefix}{key}"] = json.dumps(value) if not isinstance(value, str) else value
    return params


def log_results(cfg: ExperimentConfig, out: Path, metrics: dict[str, Any]) -> None:
    """loraner's numbers, config and files into the run the Trainer logged to (MLflow) or beside its
    events (TensorBoard)."""
    names = backends(cfg)
    if "mlflow" in names:
        _log_mlflow(cfg, out, metrics)
    if "tensorboard" in names:
        _log_tensorboard(out, metrics)


def _log_mlflow(cfg: ExperimentConfig, out: Path, metrics: dict[str, Any]) -> None:
    import mlflow
    from mlflow.entities import Metric, Param
    from mlflow.tracking import MlflowClient

    run = mlflow.active_run()  # started by tracked(), the one the Trainer logged to
    if run is None:
        raise RuntimeError("log_results with report_to: mlflow runs inside tracked()")
    run_id = run.info.run_id
    client = MlflowClient(tracking_uri=mlflow.get_tracking_uri())
    stamp = int(time.time() * 1000)
    numbers = [Metric(f"loraner.{k}", v, stamp, 0) for k, v in flat_numbers(metrics).items()]
    for row in metrics.get("epochs") or []:
        epoch = int(row.get("epoch", 0))
        numbers += [
            Metric(f"loraner.epoch.{_METRIC_NAME.sub('_', k)}", float(v), stamp, epoch)
            for k, v in row.items()
            if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "epoch"
        ]
    params = [Param(k, v[:6000]) for k, v in flat_params(metrics.get("config") or {}).items()]
    for start in range(0, max(len(numbers), len(params)), 100):  # MLflow's batch limit is 100 params
        client.log_batch(run_id, metrics=numbers[start : start + 100], params=params[start : start + 100])
    client.set_tag(run_id, "loraner.run_dir", str(out.resolve()))
    client.log_dict(run_id, metrics.get("config") or {}, "loraner/config.json")
    for relative in ARTIFACTS:
        path = out / relative
        if path.is_file():
            client.log_artifact(run_id, str(path), artifact_path=str(Path("loraner", relative).parent))


def _log_tensorboard(out: Path, metrics: dict[str, Any]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(log_dir=str(tensorboard_dir(out)))
    try:
        for name, value in flat_numbers(metrics).items():
            writer.add_scalar(f"loraner/{name}", value, 0)
        for row in metrics.get("epochs") or []:
            for key, value in row.items():
                if isinstance(value, (int, float)) and not isinstance(value, bool) and key != "epoch":
                    writer.add_scalar(f"loraner/epoch/{key}", value, int(row.get("epoch", 0)))
        writer.add_text("loraner/config", f"```json\n{json.dumps(metrics.get('config'), indent=2)}\n```", 0)
        for relative in ("report.md", "adapter/README.md", "merged/README.md"):
            path = out / relative
            if path.is_file():
                writer.add_text(f"loraner/{relative}", path.read_text(encoding="utf-8"), 0)
    finally:
        writer.close()
