"""Semantic synthetics (method section 3): textual inversion, LoRA with prior preservation, sampling."""
