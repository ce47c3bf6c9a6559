"""Use-cases: they depend on the domain and on ports, nothing else."""
