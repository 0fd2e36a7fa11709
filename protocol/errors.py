class ProtocolError(ValueError):
    """A topic or payload that does not follow the contract.

    The message says which field is wrong so that a log line is enough to
    find the sender's mistake.
    """
