"""Training parts for `train/train.py`: frozen CLIP guidance, the prompt pair, the losses, training data."""
