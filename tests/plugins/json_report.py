"""Machine-readable report of a run (to be written): see issue on the catalogue."""
