"""Pictures people look at: slices with labels overlaid, training curves and prediction reports
(PNG, `slices`, `curves`, `prediction`), and volumes in a local neuroglancer viewer
(`neuroglancer`)."""
