"""The HTTP routes, one module per topic; each holds an ``APIRouter`` named ``router``.

=================  ===========================================================================
``health``         ``/healthz``, ``/readyz``, ``/stats``, ``/metrics``
``search``         ``POST /search``, ``POST /search/batch``, ``GET /images/{id}/similar``
``images``         ``GET /images`` (pages), ``GET /images/{id}``, ``GET /images/{id}/file``,
                   ``POST /images``, ``DELETE /images/{id}``
``catalog``        ``GET /folders``, ``GET /tags``, ``PATCH /images/{id}`` (tags)
``explain``        ``GET /images/{id}/explain``, ``POST /explain``: why an image matched
``duplicates``     ``GET /duplicates``
``pages``          the web page ``/`` and the offline ``/docs`` and ``/redoc``
=================  ===========================================================================

Their dependencies (state, collection, writer, parameters) are in :mod:`service.deps`, response
bodies in :mod:`service.schemas`, the blocking work in :mod:`service.engine`.
"""
