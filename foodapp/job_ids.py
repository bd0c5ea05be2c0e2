"""Job ids: random UUIDs (version 4), as Dramatiq's own, without a system call each.

Dramatiq gives every message ``str(uuid.uuid4())``: 16 bytes of ``os.urandom``, a
``getrandom`` system call per job, and Python lets go of the GIL around it. In a web process
under load another thread takes the GIL then, and the order's thread waits to have it back:
a hand-over per order, and a hundred per menu of 100 items. Here the same kind of bytes (the
kernel's, ``os.urandom``) are read 4 KiB at a time, 256 ids a call, and each id is made from
its 16 of them exactly as ``uuid.UUID(bytes=..., version=4)`` would make it. A forked child
never hands out its parent's bytes: it starts with none.
"""
import os
import threading

from dramatiq import Message

_BATCH = 4096  # bytes: 256 ids
_lock = threading.Lock()
_bytes = b""
_at = 0


def _forked():
    global _lock, _bytes, _at
    _lock, _bytes, _at = threading.Lock(), b"", 0


os.register_at_fork(after_in_child=_forked)


def new_job_id():
    """A random UUID string, version 4 (``xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx``)."""
    global _bytes, _at
    with _lock:
        if _at >= len(_bytes):
            _bytes, _at = os.urandom(_BATCH), 0
        raw = bytearray(_bytes[_at:_at + 16])
        _at += 16
    raw[6] = raw[6] & 0x0F | 0x40  # the version, 4
    raw[8] = raw[8] & 0x3F | 0x80  # the variant, RFC 4122
    text = raw.hex()
    return f"{text[:8]}-{text[8:12]}-{text[12:16]}-{text[16:20]}-{text[20:]}"


def message_for(actor, *args, **kwargs):
    """``actor.message(*args, **kwargs)``, with its job id from new_job_id()."""
    return Message(queue_name=actor.queue_name, actor_name=actor.actor_name, args=args, kwargs=kwargs, options={},
                   message_id=new_job_id())
