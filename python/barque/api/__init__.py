"""The Docker Engine API over barque's services: what ``barque daemon`` serves.

Three layers, each in one module:

- :mod:`barque.api.http`: HTTP/1.1 on asyncio streams with h11 (one connection per client,
  keep-alive, chunked streams whose headers are flushed at once), the request and response
  types, and the one map from barque's errors to HTTP statuses.
- :mod:`barque.api.routes`: Docker's paths (unversioned and ``/v1.24``...``/v1.50``), one
  module per resource, each
  route thin: parse the request, make one service call, render Docker's JSON.
- :mod:`barque.api.server`: the Unix socket (created atomically), the thread pool the
  blocking engine calls run on, and the clean shutdown on SIGTERM/SIGINT.
"""
