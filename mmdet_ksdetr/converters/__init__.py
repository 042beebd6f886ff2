"""Checkpoint converters: KS / DAC / distillation checkpoints to stock mmdet detectors
(:mod:`.stock_conversion`)."""
