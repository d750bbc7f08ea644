"""Options declared once: ``loraner serve``'s come from the ``ServeSettings`` fields marked ``Flag`` (the
same flags, variables and defaults as when each was written out), and reach the settings as typed."""

from __future__ import annotations

import typer.main
import typer.testing

from loraner.cli import app
from loraner.serve.settings import ServeSettings

# Every `loraner serve` option: a new setting becomes one by a Flag on its field, never by accident.
SERVE_FLAGS = {
    "--model": ("-m",),
    "--base": (),
    "--adapters": (),
    "--adapter": (),
    "--default-adapter": (),
    "--max-loaded-adapters": (),
    "--base-quantization": (),
    "--dtype": (),
    "--compile": ("--no-compile",),
    "--host": (),
    "--port": (),
    "--backend": (),
    "--threads": (),
    "--concurrency": (),
    "--microbatch-ms": (),
    "--batch-size": (),
    "--max-batch-tokens": (),
    "--stride": (),
    "--aggregation": (),
    "--word-split": (),
    "--log-level": (),
    "--label-studio": ("--no-label-studio",),
    "--api-keys": (),
    "--api-keys-file": (),
    "--protect-metrics": ("--no-protect-metrics",),
    "--protect-demo": ("--no-protect-demo",),
    "--cors-origins": (),
}


def serve_options() -> dict[str, typer.core.TyperOption]:
    command = typer.main.get_command(app).commands["serve"]  # type: ignore[attr-defined]
    return {param.opts[0]: param for param in command.params if param.opts[0] != "--help"}


def test_serve_options_are_the_flagged_settings_with_their_variable_and_default():
    options = serve_options()
    assert {name: tuple(o.opts[1:] + o.secondary_opts) for name, o in options.items()} == SERVE_FLAGS
    for name, option in options.items():
        field = name[2:].replace("-", "_")
        default = ServeSettings.model_fields[field].get_default(call_default_factory=True)
        assert option.default is None  # unset: the variable, then the field's default
        assert f"LORANER_{field.upper()}" in option.help
        if default not in (None, []):
            shown = {True: "on", False: "off"}.get(default, default) if isinstance(default, bool) else default
            assert f"default {shown})" in option.help, option.help
    assert "(LORANER_PORT, default 8000)" in options["--port"].help
    assert "(LORANER_MAX_LOADED_ADAPTERS, default 16)" in options["--max-loaded-adapters"].help


def test_serve_flags_reach_the_settings_and_win_over_variables(tiny_onnx_dir, monkeypatch):
    import loraner.serve.app

    served: list[ServeSettings] = []
    monkeypatch.setattr(loraner.serve.app, "run_server", lambda settings: served.append(settings))
    monkeypatch.setenv("LORANER_PORT", "9000")
    monkeypatch.setenv("LORANER_BATCH_SIZE", "3")
    keys = "k" * 20 + ",q" + "q" * 19
    args = ["serve", "-m", str(tiny_onnx_dir), "--port", "9100", "--no-protect-metrics", "--api-keys", keys]
    result = typer.testing.CliRunner().invoke(app, [*args, "--cors-origins", "https://a.example,http://b:81"])
    assert result.exit_code == 0, result.output
    [settings] = served
    assert (settings.port, settings.batch_size, settings.protect_metrics) == (9100, 3, False)
    assert [k.get_secret_value() for k in settings.api_keys] == ["k" * 20, "q" * 20]
    assert settings.cors_origins == ["https://a.example", "http://b:81"]
    assert (settings.model, settings.max_batch_tokens, settings.compile) == (str(tiny_onnx_dir), 512, False)
