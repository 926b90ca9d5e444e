"""Data preparation: import, equalise, mask, downsample, crop, relabel and export volumes.

Users arrive with slice stacks, HDF5 exports or OpenOrganelle containers and leave with TIFF
stacks; everything in between must work on volumes larger than memory. Every step here is
therefore a blockwise job (`incasem.blockwise`) that reads from one dataset and writes a new,
staged dataset (`incasem.io.staging`), one module per step. Command-line commands are thin
shells over these functions. Sizes are in voxels and world positions in nm, axis order z, y, x.
"""
