"""The benchmark: synthetic events, ceilings measured in the same run, and the tracker against them."""
