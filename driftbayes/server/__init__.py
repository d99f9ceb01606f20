"""The driftbayes mock server: serve learned endpoints over HTTP (Starlette + uvicorn).

:mod:`driftbayes.server.app` holds :class:`~driftbayes.server.app.MockEngine` (matching,
persona choice and posterior-predictive draws, no HTTP) and
:func:`~driftbayes.server.app.create_app` (the ASGI app with the ``/__driftbayes/`` admin API).
"""
