"""The workloads ``python -m bench.run`` runs, in this order. Each is one module here with
``run(ctx: Context) -> dict``: it measures, prints its tables, writes ``bench/results/<name>.json``
(``bench.lib.common.write_result``) and returns that payload, whose ``targets`` go into the closing
table. Adding one: its module, and its name in this tuple (bench/README.md, "Adding a workload")."""

WORKLOADS = (
    "inference",
    "memory",
    "load",
    "training",
    "soak",
    "overload",
    "scale",
    "generalization",
    "adapters",
)
