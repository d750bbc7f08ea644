"""Bridges to the libraries users already run: a loraner model inside Presidio (``presidio.py``, the
``[presidio]`` extra) and inside a spaCy pipeline (``spacy.py``, the ``[spacy]`` extra).

Each bridge imports its host library itself and predicts through :class:`~loraner.inference.NERPredictor`
(``loading.py``), so long texts are windowed, offsets are exact and batches share forward passes, as in
``loraner predict`` and the service. This package imports nothing at import time: spaCy imports the
spaCy bridge (its ``spacy_factories`` entry point) whenever it builds a pipeline.
"""
