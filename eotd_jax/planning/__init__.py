"""Planning a run without its hardware: the chips and slices, compiled plans, and the collectives they move."""
