"""The network and its transformers face: architecture, network (plain PyTorch), configuration,
modeling, image processor, conversion of the authors' checkpoints, published models, loading."""
