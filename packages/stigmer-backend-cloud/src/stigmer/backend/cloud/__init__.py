"""Stigmer cloud backend: the Backend contract as a grpc.aio client of ``stigmer.v1.BackendService``.

Importing this package does not import grpc; the channel is opened on the first call.
"""

from stigmer.backend.cloud._client import CloudBackend
from stigmer.backend.cloud._endpoint import Endpoint, parse_endpoint

__all__ = ["CloudBackend", "Endpoint", "parse_endpoint"]
