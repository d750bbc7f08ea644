"""loraner benchmarks: ``python -m bench.run`` (or ``make bench``) compares loraner with the usual ways
of running and training token classifiers, on the same model, data and threads, in one run.

Modules, one per workload: ``inference`` (throughput, latency, accuracy), ``memory`` (peak RSS of a
``loraner serve`` process), ``load`` (concurrent HTTP clients, micro-batching on/off), ``training``
(samples/s and F1 of three training recipes; each variant runs in ``train_worker`` subprocesses),
``adapters`` (many LoRA adapters on one base vs a merged model: throughput, memory, serving, loading).
``models`` builds and caches the RoBERTa-base-shaped model and its ONNX exports, ``data`` the texts,
``common`` the sizes, statistics, tables and JSON results. The benchmark uses loraner's public API.
"""
