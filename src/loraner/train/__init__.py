"""Training: LoRA wrapping (PEFT), the Trainer integration, batched prediction."""
