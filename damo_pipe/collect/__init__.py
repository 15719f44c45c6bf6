"""Online collection: drive DAMON through sysfs / tracepoints and append to an HDF5 archive."""
