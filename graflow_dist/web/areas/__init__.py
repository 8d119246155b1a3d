"""The console's areas, one module each. An area module defines ``NAV`` (a
``(label, path)`` for the navigation bar, or None) and ``routes(ctx: AreaContext)``
returning its Starlette routes: pages and their JSON API under ``/api/``.

`graflow_dist.web.app.AREAS` lists the mounted areas, in navigation order: adding a
feature (e.g. human feedback: ``/api/feedback...``, ``/ui/feedback/{id}``) is a new
module here plus one entry there.
"""
