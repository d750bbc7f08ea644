"""The workloads ``python -m bench.run`` runs. Each is one module here with ``run(ctx: Context) -> dict``:
it measures, prints its tables, writes ``bench/results/<name>.json`` (``bench.lib.common.write_result``)
and returns that payload, whose ``targets`` go into the closing table. Adding one: its module, and its
name in one of the two tuples below (bench/README.md, "Adding a workload")."""

# What ``make bench`` (``python -m bench.run``) runs, in this order.
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
# Run only when named (``--only NAME``): workloads too long for every ``make bench``.
# accuracy: real weights at base size (MPNet-base), hours of training on 2 cores (`make bench-accuracy`).
# active_learning: `loraner rank` vs random selection on CoNLL, 27 MiniLM trainings (over an hour).
OPT_IN: tuple[str, ...] = ("accuracy", "active_learning")
