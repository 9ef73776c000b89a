"""Generation stages: healthy (inpainting), lesion-mapped and semantic synthetics."""
