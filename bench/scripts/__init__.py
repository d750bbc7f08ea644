"""Standalone measurements outside ``bench.run``, each with its own command line: ``quickstart_backends``
(torch vs ONNX fp32 vs int8 on the quickstart model) and ``static_int8`` (static vs dynamic int8)."""
