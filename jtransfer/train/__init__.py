"""Training: the pre-train and fine-tune loops, their shared step builder and schedule helpers."""
