"""Batch jobs: a file of documents through ``predict`` or ``deid``, one output row per input row, in
input order, in this process (:func:`run_job`) or on Ray (:mod:`loraner.jobs.ray`, the ``[ray]`` extra).

Both engines read and check rows the same way (:mod:`loraner.jobs.documents`), run the same task on
chunks of them (:mod:`loraner.jobs.tasks`) and write through the same writer: a bad row becomes a record
with ``"error"`` (where and why, never the text) and the job goes on, or, with ``strict``, stops the job.

This layer sits above ``inference`` and ``deid``: it is where a model and de-identification meet files.
"""

from loraner.jobs.documents import Document, check_documents, read_documents, read_texts
from loraner.jobs.run import CHUNK_ROWS, Job, JobSummary, load_task, run_job, run_text
from loraner.jobs.tasks import DeidTask, PredictTask, Task, TaskName, make_task

__all__ = [
    "CHUNK_ROWS",
    "DeidTask",
    "Document",
    "Job",
    "JobSummary",
    "PredictTask",
    "Task",
    "TaskName",
    "check_documents",
    "load_task",
    "make_task",
    "read_documents",
    "read_texts",
    "run_job",
    "run_text",
]
