"""``training.report_to``: the Trainer's logging and loraner's own numbers in an MLflow store inside the run
directory (read back with MLflow's own client) and in TensorBoard event files (read back with
TensorBoard's own reader)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from test_cli_train import invoke, write_config

from loraner.errors import ConfigError
from loraner.settings import TrainingConfig, load_config
from loraner.train import tracking

mlflow = pytest.importorskip("mlflow")  # the [mlflow] extra, in `make test`'s [all]


@pytest.fixture(scope="module")
def tracked_run(tmp_path_factory, tiny_roberta_dir) -> Path:
    tmp = tmp_path_factory.mktemp("tracked-run")
    config = write_config(tmp, tiny_roberta_dir)
    output = invoke(
        "train",
        str(config),
        "--output",
        str(tmp / "out"),
        "--set",
        "training.report_to=[mlflow,tensorboard]",
        "--set",
        "training.epochs=2",
    )
    # the command says where to look
    out = (tmp / "out").resolve()
    assert f"mlflow ui --backend-store-uri sqlite:///{out / tracking.MLFLOW_DB}" in output
    assert "tensorboard --logdir" in output
    return tmp / "out"


def test_when_report_to_is_mlflow_then_metrics_params_and_artifacts_are_in_the_run_directory_store(
    tracked_run,
):
    from mlflow.tracking import MlflowClient

    metrics = json.loads((tracked_run / "metrics.json").read_text(encoding="utf-8"))
    client = MlflowClient(tracking_uri=f"sqlite:///{tracked_run / tracking.MLFLOW_DB}")
    experiment = client.get_experiment_by_name("tiny")
    assert experiment is not None and experiment.artifact_location.startswith(tracked_run.resolve().as_uri())
    (run,) = client.search_runs([experiment.experiment_id])
    logged = run.data.metrics
    # the Trainer's own logging: its loss and per-epoch validation
    assert "train_loss" in logged and "eval_f1" in logged
    # loraner's numbers, equal to metrics.json: after and before, per type, parameter efficiency
    assert logged["loraner.test.f1"] == pytest.approx(metrics["test"]["f1"])
    assert logged["loraner.before.f1"] == pytest.approx(metrics["before"]["f1"])
    for kind, scores in metrics["test"]["per_type"].items():
        assert logged[f"loraner.test.per_type.{kind}.f1"] == pytest.approx(scores["f1"])
    assert logged["loraner.params.trainable"] == metrics["params"]["trainable"]
    epochs = client.get_metric_history(run.info.run_id, "loraner.epoch.f1")
    assert [m.step for m in epochs] == [row["epoch"] for row in metrics["epochs"]]
    # the config as parameters, beside the Trainer's own
    assert run.data.params["config.training.learning_rate"] == "0.05"
    assert run.data.params["config.data.format"] == "conll"
    assert "learning_rate" in run.data.params
    # the files, as artifacts stored inside the run directory
    files = {f.path for f in client.list_artifacts(run.info.run_id, "loraner")}
    assert {"loraner/metrics.json", "loraner/report.md", "loraner/config.json", "loraner/adapter"} <= files
    local = Path(client.download_artifacts(run.info.run_id, "loraner/metrics.json", str(tracked_run / "dl")))
    assert json.loads(local.read_text(encoding="utf-8")) == metrics
    assert (tracked_run / tracking.MLFLOW_ARTIFACTS).is_dir()


def test_when_report_to_is_tensorboard_then_the_event_files_hold_the_trainer_and_loraner_numbers(tracked_run):
    event_accumulator = pytest.importorskip("tensorboard.backend.event_processing.event_accumulator")
    metrics = json.loads((tracked_run / "metrics.json").read_text(encoding="utf-8"))
    scalars: dict[str, float] = {}
    texts: set[str] = set()
    for events in (tracked_run / tracking.TENSORBOARD_DIR).rglob("events.out.tfevents.*"):
        reader = event_accumulator.EventAccumulator(str(events), size_guidance={"tensors": 0, "scalars": 0})
        reader.Reload()
        for tag in reader.Tags()["scalars"]:
            scalars[tag] = reader.Scalars(tag)[-1].value
        texts |= {tag for tag in reader.Tags()["tensors"] if tag.startswith("loraner/")}
    assert "train/loss" in scalars  # the Trainer's
    assert scalars["loraner/test.f1"] == pytest.approx(metrics["test"]["f1"], abs=1e-6)
    assert {"loraner/config/text_summary", "loraner/report.md/text_summary"} <= texts


@pytest.mark.parametrize(
    ("given", "expected"),
    [("none", []), ("mlflow", ["mlflow"]), (["tensorboard", "mlflow", "mlflow"], ["tensorboard", "mlflow"])],
)
def test_report_to_takes_none_one_backend_or_a_list(given, expected):
    assert TrainingConfig(report_to=given).report_to == expected
    assert TrainingConfig().report_to == []  # none by default: nothing leaves the run directory


def test_when_a_backend_is_not_installed_then_the_error_names_the_extra(
    monkeypatch, tmp_path, tiny_roberta_dir
):
    cfg = load_config(write_config(tmp_path, tiny_roberta_dir), ["training.report_to=tensorboard"])
    monkeypatch.setattr(tracking.importlib.util, "find_spec", lambda name: None)
    with pytest.raises(ConfigError, match=r"pip install 'loraner\[tensorboard\]'"):
        tracking.check_installed(cfg)
