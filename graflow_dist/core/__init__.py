"""The Graflow-compatible workflow model: tasks, graphs, contexts, engine, checkpoints."""
