"""Automatic label maps for photos without a mask: CPU (colour contrast + GrabCut) and learned backends."""
