"""An MPI task for the tests: rank 0 writes, for every rank, where it ran.

Output: ranks<PYL_ID>.json in the current directory, a list of
{rank, size, host, cores} where host is the segment's host (MPILAUNCHER_HOST
under mpiexec, SLURMD_NODENAME under srun).  Exit status: argv[1] if given.
"""

import json
import os
import sys

from mpi4py import MPI

comm = MPI.COMM_WORLD
info = {
    "rank": comm.Get_rank(),
    "size": comm.Get_size(),
    "host": os.environ.get("MPILAUNCHER_HOST") or os.environ.get("SLURMD_NODENAME"),
    "cores": os.environ.get("MPILAUNCHER_HOST_CORES"),
}
everyone = comm.gather(info, root=0)
if comm.Get_rank() == 0:
    with open(f"ranks{os.environ['PYL_ID']}.json", "w") as out:
        json.dump(everyone, out)
sys.exit(int(sys.argv[1]) if len(sys.argv) > 1 else 0)
