"""Dataset card, plots and Croissant metadata for a built version."""
