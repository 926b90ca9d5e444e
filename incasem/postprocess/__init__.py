"""Post-processing and analysis of predictions: thresholds, scores, instances, morphometrics, merge.

After prediction a user needs numbers: which threshold, how good, how many objects, how large,
and one label per voxel when several single-organelle networks disagree. Every step here reads
zarr datasets and works block by block (`incasem.blockwise`, daisy 2 worker processes), so a
whole cell never has to fit in memory. Steps that need global knowledge (connected components,
per-object tables, scores) let each block write small additive partial results (counts, moments,
face pairs) to files that the driver combines exactly, so blockwise results equal whole-volume
results. One module per step; the ``incasem`` commands are thin shells over them. Sizes are in
voxels, positions in nm, axis order z, y, x.
"""
