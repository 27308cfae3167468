"""Export of trained networks: NIR graphs (HDF5), Lava-dl netx HDF5, and per-chip quantisation."""

from .nir import ExportError, from_nir, load_nir, read_nir, save_nir, to_nir

__all__ = ["ExportError", "from_nir", "load_nir", "read_nir", "save_nir", "to_nir"]
