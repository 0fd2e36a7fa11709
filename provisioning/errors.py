"""The errors of the provisioning tool: each message is what the technician reads."""


class ProvisionError(Exception):
    """A failure with a message fit for `provision: <message>` (no traceback is shown)."""


class ConnectionLostError(ProvisionError):
    """The port went away in the middle of a conversation: cable pulled, board reset or powered off."""


class BoardFullError(ProvisionError):
    """The board's filesystem refused a write (ENOSPC)."""
