"""The run layer: the run spec and its defaults, unit planning and keys, records, the unit loop, sharding."""
