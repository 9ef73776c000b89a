"""Lesion-mapped synthetics: plan, exact placement, fallbacks, blends, the stage and its quality measures."""
