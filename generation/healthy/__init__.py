"""Healthy synthetics: the lesion region inpainted away (the stage, the region crop, the backends)."""
