"""Images in memory and on disk: decoding and encoding every mode (codec), reading and writing files."""

# The largest image read by default (CLI and app), here so that `--help` needs no numpy: decoded and
# enhanced (exact mode, automatic tiles) within 4 GB of memory (figures: README, "Guarantees").
DEFAULT_MAX_MEGAPIXELS = 50.0
