"""The pure scheduling core: no MPI, no processes, no clock, no files."""
