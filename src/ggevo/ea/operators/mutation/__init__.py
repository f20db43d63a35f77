"""Mutation: GEMONN's zeroing, magnitude pruning of a child, polynomial mutation (ours and pymoo's), and the
coordinates a per-coordinate mutation touches."""
