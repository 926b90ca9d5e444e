"""A synthetic FIB-SEM cell with exact labels, for the demo, the tests and the benchmarks.

`generate_cell` draws a cell (plasma membrane, nucleus with pores, mitochondria with cristae,
ER, Golgi, vesicles) at a given voxel size and returns raw and one label per organelle;
`write_cell` stores it as a zarr container in the layout every incasem command reads
(``incasem phantom``). It is a package of its own because it is a simulator, not I/O: it sits
above `incasem.io` (which it writes with) and nothing in the library depends on it.
"""

from incasem.phantom.cell import ORGANELLES, PhantomCell, generate_cell, write_cell

__all__ = ["ORGANELLES", "PhantomCell", "generate_cell", "write_cell"]
