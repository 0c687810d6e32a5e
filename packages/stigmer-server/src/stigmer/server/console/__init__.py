"""The web console: runs, definitions, secrets and tokens in a browser, served by ``stigmer server``
on its HTTP listener (``/console``), by ``stigmer local start`` and by ``stigmer console`` (Lite).

Server-rendered HTML (Jinja2) with one small hand-written script and stylesheet shipped in the
package: no build step, no network access. Every page reads the Backend through the server's own
servicer as the logged-in caller (:class:`Gateway`), so roles apply exactly as over gRPC.
"""

from stigmer.server.console._app import console_app
from stigmer.server.console._gateway import CallError, Gateway
from stigmer.server.console._web import DEFINITION_KINDS, PAGE_SIZE

__all__ = ["DEFINITION_KINDS", "PAGE_SIZE", "CallError", "Gateway", "console_app"]
