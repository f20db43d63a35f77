"""Crossover: plain and gradient-guided SBX over one fused per-coordinate kernel, and pymoo's SBX on tensors."""
