"""Run LocalStack's runtime (host mode) with its gateway listening only where GATEWAY_LISTEN says.

Started by infra/local/stack.sh as `.local/venv/bin/python infra/local/localstack_main.py`.

LocalStack 4.9.2's default gateway server (twisted) ignores the host part of GATEWAY_LISTEN
(localstack/runtime/server/twisted.py: "TODO: interface = host?") and so listens on every
interface. Its alternative server, hypercorn, honours the host but served SQS and EventBridge
calls at about half the rate here (SendMessage ~200/s against ~380/s). This launcher hands the
host to twisted, then runs LocalStack's own entry point unchanged.
"""

import runpy
import sys

from localstack import config
from localstack.runtime.server import twisted as twisted_server

_endpoints = getattr(twisted_server, "endpoints", None)
if _endpoints is None or not hasattr(_endpoints, "TCP4ServerEndpoint"):
    sys.exit("localstack_main.py: LocalStack's twisted server changed; revisit this launcher")

_hosts = {listen.port: listen.host for listen in config.GATEWAY_LISTEN}


class _BoundEndpoints:
    """Stands in for twisted.internet.endpoints inside LocalStack's twisted server module only."""

    TCP6ServerEndpoint = _endpoints.TCP6ServerEndpoint

    @staticmethod
    def TCP4ServerEndpoint(reactor, port, backlog=50, interface=""):  # noqa: N802 (twisted's name)
        return _endpoints.TCP4ServerEndpoint(reactor, port, backlog, interface or _hosts.get(port, ""))


twisted_server.endpoints = _BoundEndpoints
runpy.run_module("localstack.runtime.main", run_name="__main__", alter_sys=True)
