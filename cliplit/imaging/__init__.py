"""Images in memory and on disk: decoding and encoding every mode (codec), reading and writing files."""
