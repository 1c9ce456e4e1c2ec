"""Tasks: the synthetic task generators, their metrics, and fine-tuning on them."""
