"""loraner benchmarks: ``python -m bench.run`` (or ``make bench``) compares loraner with the usual ways
of running and training token classifiers, on the same model, data and threads, in one run.

``bench.workloads``: one module per workload, listed in run order in ``bench/workloads/__init__.py``.
``bench.lib``: what they share (sizes, statistics, tables and JSON results; texts; the cached models; a
``loraner serve`` subprocess and its clients; the training worker process). ``bench.scripts``: standalone
measurements with their own command lines. bench/README.md describes each workload and how to add one.
"""
