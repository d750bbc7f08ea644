"""``loraner calibrate``: the smallest o_threshold that reaches a character-level PHI recall.

The predictor is real (MiniLM's tokenizer, windows, decoding, the de-identification pipeline and its
scores); its backend answers from a rule whose probabilities are known, so the right choice is known:
the tokens of the patient names get P(O) = 0.85 (argmax misses them), every other token P(O) = 0.999
(only a cut-off above 0.999 tags them). A cut-off in (0.85, 0.999] finds every name and nothing else.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from transformers import AutoTokenizer
from typer.testing import CliRunner

from loraner.cli import app
from loraner.deid import DeidConfig, load_deid_config
from loraner.errors import ConfigError
from loraner.eval.calibrate import calibrate_o_threshold, write_calibrated_config
from loraner.inference import NERPredictor
from loraner.settings import load_config

LABELS = ["O", "B-PATIENT", "I-PATIENT"]
NAMES = ["Kari Nordmann", "Ola Hansen", "Ingrid Berg"]
NOTES = [
    "Pasienten {} ble innlagt med brystsmerter.",
    "Kontroll hos fastlege. {} har det bedre.",
    "Samtale med {} om videre plan.",
]


def write_notes(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for split in ("train", "validation", "test"):
        with (folder / f"{split}.jsonl").open("w", encoding="utf-8") as out:
            for i, (template, name) in enumerate(zip(NOTES, NAMES, strict=True)):
                text = template.format(name)
                start = text.index(name)
                span = {"start": start, "end": start + len(name), "label": "PATIENT"}
                out.write(json.dumps({"id": f"{split}-{i}", "text": text, "spans": [span]}) + "\n")
    return folder


class NameRuleBackend:
    """Logits with P(O) = 0.85 on the tokens of the names (B on a name's first token, I on the rest),
    0.999 elsewhere."""

    name = "rule"

    def __init__(self, tokenizer) -> None:
        self.first = {tokenizer(n, add_special_tokens=False)["input_ids"][0] for n in NAMES}
        self.inside = {i for n in NAMES for i in tokenizer(n, add_special_tokens=False)["input_ids"][1:]}

    def logits(self, input_ids: np.ndarray, attention_mask: np.ndarray) -> np.ndarray:
        probs = np.full((*input_ids.shape, len(LABELS)), 0.0005)
        probs[..., 0] = 0.999
        first, inside = np.isin(input_ids, list(self.first)), np.isin(input_ids, list(self.inside))
        for mask, label in ((first, 1), (inside, 2)):
            probs[mask] = 0.05
            probs[mask, 0], probs[mask, label] = 0.85, 0.10
        return np.log(probs).astype(np.float32)


@pytest.fixture
def setup(tmp_path, minilm_dir):
    tokenizer = AutoTokenizer.from_pretrained(minilm_dir)
    predictor = NERPredictor(tokenizer, NameRuleBackend(tokenizer), LABELS)
    data = write_notes(tmp_path / "notes")
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"name: notes\ndata: {{format: jsonl, path: {data}, scheme: IOB2}}\n", encoding="utf-8")
    return predictor, load_config(preset)


def test_when_argmax_misses_the_names_then_the_smallest_threshold_that_finds_them_is_chosen(setup):
    predictor, cfg = setup
    result = calibrate_o_threshold("rule", cfg, DeidConfig(), 0.99, recognizers=False, predictor=predictor)
    by_threshold = {s.o_threshold: s for s in result.scores}
    assert by_threshold[None].char_recall == 0.0  # argmax: every token is O
    assert result.chosen is not None and result.chosen.o_threshold == 0.9  # the first candidate > 0.85
    assert (result.chosen.char_recall, result.chosen.precision, result.chosen.recall) == (1.0, 1.0, 1.0)
    # above 0.999 every word is a name: the recall stays, the precision is what it costs
    assert by_threshold[0.9995].char_recall == 1.0 and by_threshold[0.9995].precision < 0.5


def test_when_no_threshold_reaches_the_target_then_nothing_is_chosen_or_written(setup, tmp_path):
    predictor, cfg = setup
    result = calibrate_o_threshold(
        "rule", cfg, DeidConfig(), 0.99, recognizers=False, predictor=predictor, candidates=(None, 0.5, 0.7)
    )
    assert result.chosen is None
    with pytest.raises(ConfigError, match="nothing to write"):
        write_calibrated_config(None, tmp_path / "out.yaml", result, "rule")


def test_the_written_config_is_the_source_with_the_chosen_threshold(setup, tmp_path):
    predictor, cfg = setup
    result = calibrate_o_threshold("rule", cfg, DeidConfig(), 0.99, recognizers=False, predictor=predictor)
    source = Path(__file__).resolve().parents[2] / "configs" / "deid.yaml"
    written = write_calibrated_config(source, tmp_path / "deid-calibrated.yaml", result, "rule")
    calibrated, original = load_deid_config(written), load_deid_config(source)
    assert calibrated.o_threshold == 0.9
    assert calibrated.model_dump(exclude={"o_threshold"}) == original.model_dump(exclude={"o_threshold"})
    assert "character-level PHI recall 1.0000 (target 0.99)" in written.read_text(encoding="utf-8")


def test_the_command_refuses_a_target_out_of_range_and_a_split_without_phi(tmp_path, minilm_dir):
    data = write_notes(tmp_path / "notes")
    (data / "validation.jsonl").write_text('{"id": "v", "text": "Ingen navn her.", "spans": []}\n')
    preset = tmp_path / "preset.yaml"
    preset.write_text(f"name: notes\ndata: {{format: jsonl, path: {data}}}\n", encoding="utf-8")
    runner = CliRunner()
    common = [
        "calibrate",
        "--model",
        str(minilm_dir),
        "--config",
        str(preset),
        "-o",
        str(tmp_path / "o.yaml"),
    ]
    out_of_range = runner.invoke(app, [*common, "--target-char-recall", "1.5"])
    assert out_of_range.exit_code == 1 and "target char recall must be in (0, 1]" in out_of_range.output
    no_phi = runner.invoke(app, [*common, "--target-char-recall", "0.99"])
    assert no_phi.exit_code == 1 and "'validation' split has no PHI spans" in no_phi.output
    assert not (tmp_path / "o.yaml").exists()
