"""Helpers the workloads share: sizes, run context, statistics, targets, tables and JSON (``common``),
texts (``data``), the cached models (``models``), the made LoRA adapters and their exports
(``adapters``), a ``loraner serve`` subprocess and its load client (``serving``), hostile clients
(``hostile``) and the training worker process (``train_worker``). No helper imports a workload."""
