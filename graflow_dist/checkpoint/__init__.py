"""Checkpoints: format, stores (filesystem, Redis) and the write/load logic."""
