"""Offline checks of compose.yaml, workers/ and deploy/."""
