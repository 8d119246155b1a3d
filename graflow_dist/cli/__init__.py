"""The graflow-dist command line."""
