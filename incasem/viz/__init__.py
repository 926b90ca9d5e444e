"""Pictures people look at: slices with labels overlaid (PNG)."""
