"""The exception tree of the cloud package.

CloudError                 anything the cloud's domain code raises on purpose
├── NotFound               the asked-for machine, series ... does not exist
└── InvalidRequest         a request that cannot be carried out as asked (says why)
"""

from __future__ import annotations


class CloudError(Exception):
    """Base of every error raised on purpose by ``cloud``."""


class NotFound(CloudError):
    """A machine, series or other record that does not exist."""


class InvalidRequest(CloudError):
    """A request that is well-formed but cannot be carried out; the message says why."""
