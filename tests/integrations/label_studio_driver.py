"""Drives a real Label Studio server with label-studio-sdk, in Label Studio's own venv (its pins clash with
loraner's): ``python label_studio_driver.py PLAN.json`` prints a JSON report.

The plan: the server's URL and API token, a labelling config, tasks to import as they are (loraner's
pre-annotated tasks) and texts to import bare, the annotations to add through the API, the ML backend
to connect (URL, Basic user and password); the report: the project, what the backend predicted for
the bare tasks, and the project's JSON export, written to ``export``.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from label_studio_sdk.client import LabelStudio


def main(plan_path: str) -> None:
    plan = json.loads(Path(plan_path).read_text(encoding="utf-8"))
    ls = LabelStudio(base_url=plan["url"], api_key=plan["token"])
    project = ls.projects.create(title="loraner round trip", label_config=plan["label_config"])
    tasks = [json.loads(line) for line in Path(plan["tasks"]).read_text(encoding="utf-8").splitlines()]
    bare = [{"data": {"text": text}} for text in plan["bare_texts"]]
    ls.projects.import_tasks(id=project.id, request=tasks + bare, return_task_ids=True)
    listed = list(ls.tasks.list(project=project.id, fields="all"))
    by_text = {task.data["text"]: task for task in listed}

    # An annotator accepts each imported pre-annotation as it is, then changes their mind on one task
    # (a newer annotation without its last region) and cancels another (skipped: not read).
    for number, task in enumerate(tasks):
        stored = by_text[task["data"]["text"]]
        result = task["predictions"][0]["result"]
        ls.annotations.create(id=stored.id, result=result, was_cancelled=False)
        if number == plan["revise"]:
            time.sleep(1.1)  # updated_at has second resolution in some exports
            ls.annotations.create(id=stored.id, result=result[:-1], was_cancelled=False)
        if number == plan["cancel"]:
            time.sleep(1.1)
            ls.annotations.create(id=stored.id, result=[], was_cancelled=True)

    backend = ls.ml.create(
        project=project.id,
        url=plan["backend_url"],
        title="loraner",
        auth_method="BASIC_AUTH",
        basic_auth_user=plan["backend_user"],
        basic_auth_pass=plan["backend_password"],
    )
    backend = ls.ml.get(id=backend.id)
    ids = [by_text[text].id for text in plan["bare_texts"]]
    ls.actions.create(
        id="retrieve_tasks_predictions",
        project=project.id,
        selected_items={"all": False, "included": ids},
    )
    predicted = {}
    for task_id, text in zip(ids, plan["bare_texts"], strict=True):
        predictions = list(ls.predictions.list(task=task_id))
        predicted[text] = [
            {"model_version": p.model_version, "score": p.score, "result": p.result} for p in predictions
        ]
    export = b"".join(
        ls.projects.exports.download_sync(project.id, export_type="JSON", download_all_tasks=True)
    )
    Path(plan["export"]).write_bytes(export)
    report = {
        "project": project.id,
        "backend": {"state": str(backend.state), "model_version": backend.model_version},
        "predicted": predicted,
    }
    print(json.dumps(report))


if __name__ == "__main__":
    main(sys.argv[1])
