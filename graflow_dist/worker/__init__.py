"""Workers: claim batch jobs from RQ queues and run their tasks."""
