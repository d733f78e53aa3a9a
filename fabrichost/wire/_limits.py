"""How large an instance's input may be: what the pipe protocol can deliver to its process.

An instance's input reaches its process as the replica's init data, a JSON string inside one
``OpenReplica`` frame, and a frame holds at most ``DEFAULT_MAX_FRAME_SIZE`` bytes. An input that
does not fit could never be delivered: its instance would stay Pending for ever. So the agent
refuses it before anything is created, and the client and the command line check it before
they send it.
"""

from __future__ import annotations

from typing import Final

from fabrichost.errors import TooLargeError
from fabrichost.protocol import DEFAULT_MAX_FRAME_SIZE, encode_payload

#: Room kept in the frame for the rest of the OpenReplica message: the service's name (an
#: application name of up to 1024 characters and the instance ID), its type, the partition and
#: the endpoints of the code package.
_ENVELOPE_BYTES: Final = 16 * 1024
#: The largest instance input, measured as :func:`instance_input_size` measures it.
MAX_INSTANCE_INPUT_BYTES: Final = DEFAULT_MAX_FRAME_SIZE - _ENVELOPE_BYTES


def instance_input_size(input_json: str) -> int:
    """The bytes ``input_json`` (the input's JSON text) takes in the frame that carries it.

    That is its length as a JSON string in ASCII: quotes and backslashes escaped, every
    character beyond ASCII as ``\\uXXXX`` (6 bytes; 12 for one beyond the BMP).
    """
    return len(encode_payload({"": input_json})) - len(b'{"":}')


def check_instance_input(input_json: str) -> None:
    """Refuse an instance input its process could not be given.

    Raises:
        TooLargeError: ``input_json`` takes more than :data:`MAX_INSTANCE_INPUT_BYTES` in the
            frame; the message gives both sizes.
    """
    size = instance_input_size(input_json)
    if size > MAX_INSTANCE_INPUT_BYTES:
        raise TooLargeError(
            f"the instance's input is {size} bytes as its process receives it (JSON text as a "
            f"JSON string); at most {MAX_INSTANCE_INPUT_BYTES} bytes fit in one pipe frame"
        )
