"""HTTP plumbing, below the routes: nothing here knows a route or the index.

=================  ===========================================================================
``connections``    uvicorn's h11 protocol: header/body deadlines, the connection cap (JSON 503)
``limits``         the request-body cap (413 before anything is buffered)
``metrics``        Prometheus metrics (one registry per app) and the middleware that feeds them
``inference``      the bounded thread pool CPU work runs in (503 ``queue_full`` beyond it)
=================  ===========================================================================
"""
