"""How the master and the agents exchange messages, and nothing else: the interfaces (``base.py``),
in-process for node 0 (``local.py``) and MPI for the others (``mpi.py``, the launcher's one mpi4py
import; ``mpilauncher.spawn``, the proxy run by ``--mpi-starter spawn``, is a separate program)."""
