"""The inference engine: `Enhancer` (settings, per-image calls) over a `Runtime` (the network prepared
for a device and precision), the fused CPU pass, exact tiles and fast mode."""
