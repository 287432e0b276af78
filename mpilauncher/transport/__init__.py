"""How the master and the agents exchange messages: in-process, or MPI (the only mpi4py import)."""
