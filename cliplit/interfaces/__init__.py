"""What users touch: the `cliplit` command and its batch processing, the `backlit-enhancement`
pipeline, and the registration with transformers."""
