"""CLIP-LIT training script and its data helpers (see train/train.py)."""
