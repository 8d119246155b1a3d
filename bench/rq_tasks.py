"""The job function of the raw RQ baseline (imported by `rq worker -P bench/`)."""


def noop(*args, **kwargs):
    return None
