"""Runtime settings that must fit inside a container's memory limit.

Redis ``maxmemory``, the JVM's ``-Xmx`` and PostgreSQL's ``shared_buffers`` are sized from
the catalogue's memory limit when rendering, and read back from (possibly hand-edited)
manifests when checking. A setting at or above the limit gets the container OOM-killed
under load, so the checks demand headroom below the limit (the ``MAX_*`` fractions) while
rendering picks a more conservative fraction (the ``*_FRACTION`` values).
"""
from __future__ import annotations

import re
import shlex
from fractions import Fraction

MIB = 2**20

# What rendering writes, as a fraction of the memory limit.
REDIS_MAXMEMORY_FRACTION = Fraction(3, 4)      # room for fork copy-on-write and buffers
JVM_HEAP_FRACTION = Fraction(2, 3)             # the seed's -Xmx1g inside a 1536Mi limit
JVM_INITIAL_HEAP_FRACTION = Fraction(1, 2)     # -Xms half of -Xmx, as the seed's 512m/1g
POSTGRES_SHARED_BUFFERS_FRACTION = Fraction(1, 4)  # PostgreSQL's own guidance

# The most the checks accept, as a fraction of the memory limit.
MAX_REDIS_MAXMEMORY = Fraction(3, 4)
MAX_JVM_HEAP = Fraction(3, 4)
MAX_POSTGRES_SHARED_BUFFERS = Fraction(2, 5)

JVM_FLAGS = "-XX:+UseG1GC -XX:MaxGCPauseMillis=100"


def _mib_floor(limit_bytes: int, fraction: Fraction) -> int:
    """``fraction`` of the limit, rounded down to whole MiB (at least 1 MiB)."""
    return max(1, int(limit_bytes * fraction) // MIB)


# -- Redis -----------------------------------------------------------------------------

def redis_maxmemory_bytes(limit_bytes: int) -> int:
    return _mib_floor(limit_bytes, REDIS_MAXMEMORY_FRACTION) * MIB


def redis_conf(limit_bytes: int) -> str:
    """``redis.conf`` for the seed's tuning plus a maxmemory inside the limit."""
    mib = redis_maxmemory_bytes(limit_bytes) // MIB
    return (
        f"maxmemory {mib}mb\n"
        "maxmemory-policy allkeys-lru\n"
        "tcp-keepalive 300\n"
        "save 900 1\n"
        "appendonly no\n"
        "dir /data\n"
        "protected-mode yes\n"
    )


_REDIS_UNITS = {"": 1, "b": 1, "k": 1000, "kb": 1024, "m": 10**6, "mb": 2**20,
                "g": 10**9, "gb": 2**30}
_REDIS_MAXMEMORY = re.compile(r"^\s*maxmemory\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)
_REDIS_SIZE = re.compile(r"^([0-9]+)([a-z]*)$", re.IGNORECASE)


def parse_redis_size(text: str) -> int | None:
    """A redis.conf memory size ("1536mb", "2gb", "100000") as bytes; None if unreadable."""
    m = _REDIS_SIZE.match(text.strip())
    if not m or m.group(2).lower() not in _REDIS_UNITS:
        return None
    return int(m.group(1)) * _REDIS_UNITS[m.group(2).lower()]


def redis_maxmemory_in(conf: str) -> str | None:
    """The last ``maxmemory`` value of a redis.conf text (Redis keeps the last one)."""
    found = _REDIS_MAXMEMORY.findall(conf)
    return found[-1] if found else None


# -- JVM -------------------------------------------------------------------------------

def _jvm_size(mib: int) -> str:
    return f"{mib // 1024}g" if mib % 1024 == 0 else f"{mib}m"


def jvm_heap_bytes(limit_bytes: int) -> int:
    return _mib_floor(limit_bytes, JVM_HEAP_FRACTION) * MIB


def java_opts(limit_bytes: int) -> str:
    """The seed's ``JAVA_OPTS`` with the heap sized from the limit (1536Mi -> -Xmx1g)."""
    xmx = jvm_heap_bytes(limit_bytes) // MIB
    xms = max(1, int(xmx * JVM_INITIAL_HEAP_FRACTION))
    return f"-Xms{_jvm_size(xms)} -Xmx{_jvm_size(xmx)} {JVM_FLAGS}"


_JVM_UNITS = {"": 1, "k": 1024, "m": 2**20, "g": 2**30, "t": 2**40}
_JVM_XMX = re.compile(r"^-Xmx([0-9]+)([kmgt]?)$", re.IGNORECASE)


def jvm_max_heap_in(opts: str) -> tuple[str, int | None] | None:
    """The last ``-Xmx`` of a JAVA_OPTS text (the JVM keeps the last): (text, bytes)."""
    try:
        words = shlex.split(opts)
    except ValueError:
        words = opts.split()
    found = None
    for w in words:
        if w.startswith("-Xmx"):
            m = _JVM_XMX.match(w)
            found = (w, int(m.group(1)) * _JVM_UNITS[m.group(2).lower()] if m else None)
    return found


# -- PostgreSQL ------------------------------------------------------------------------

def postgres_shared_buffers_bytes(limit_bytes: int) -> int:
    return _mib_floor(limit_bytes, POSTGRES_SHARED_BUFFERS_FRACTION) * MIB


def _pg_size(mib: int) -> str:
    return f"{mib // 1024}GB" if mib % 1024 == 0 else f"{mib}MB"


def postgresql_conf(limit_bytes: int) -> str:
    """``postgresql.conf`` with shared_buffers a quarter of the limit."""
    sb = postgres_shared_buffers_bytes(limit_bytes) // MIB
    cache = _mib_floor(limit_bytes, Fraction(1, 2))
    return (
        "listen_addresses = '*'\n"
        "max_connections = 200\n"
        f"shared_buffers = {_pg_size(sb)}\n"
        f"effective_cache_size = {_pg_size(cache)}\n"
        "shared_preload_libraries = 'pg_stat_statements'\n"
        "unix_socket_directories = '/var/run/postgresql'\n"
    )


# PostgreSQL memory units are powers of 1024; a bare number counts 8kB blocks.
_PG_UNITS = {"b": 1, "kb": 1024, "mb": 2**20, "gb": 2**30, "tb": 2**40, "": 8192}
_PG_SHARED_BUFFERS = re.compile(
    r"^\s*shared_buffers\s*=?\s*'?([0-9]+)\s*([a-z]*)'?\s*(?:#.*)?$", re.IGNORECASE | re.MULTILINE)
_PG_SHARED_BUFFERS_ANY = re.compile(r"^\s*shared_buffers\b.*$", re.IGNORECASE | re.MULTILINE)


def postgres_shared_buffers_in(conf: str) -> tuple[str, int | None] | None:
    """The last ``shared_buffers`` line of a postgresql.conf text: (line, bytes or None)."""
    lines = _PG_SHARED_BUFFERS_ANY.findall(conf)
    if not lines:
        return None
    last = lines[-1].strip()
    m = _PG_SHARED_BUFFERS.match(last)
    if not m or m.group(2).lower() not in _PG_UNITS:
        return last, None
    return last, int(m.group(1)) * _PG_UNITS[m.group(2).lower()]
