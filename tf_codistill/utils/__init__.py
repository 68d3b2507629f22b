"""Machinery below the algorithm: leases on a model_dir's groups, the integer all-gather
of a group's workers, glibc's malloc arenas. Imports only ``config``."""
