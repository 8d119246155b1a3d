"""Utilities with Graflow's module paths (``graflow_dist.utils.graph``)."""
