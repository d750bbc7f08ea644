"""HTTP service: ``create_app(settings, predictor_factory)`` and ``run_server``. Needs ``loraner[serve]``.

Imports the core, ``loraner.inference`` and ``loraner.deid``; only the top layer (commands, demo) imports it.
"""

from loraner.serve.app import create_app, run_server
from loraner.serve.settings import ServeSettings

__all__ = ["ServeSettings", "create_app", "run_server"]
