"""Training: the bundled model from scratch or continued (train; ``python -m evo2kit.training``), training
stability under gradient recipes (stability), and fine-tuning a variant classifier (finetune)."""
