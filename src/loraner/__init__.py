"""loraner: LoRA fine-tuning, honest evaluation, merging and fast CPU serving for NER."""

__version__ = "0.1.0"
