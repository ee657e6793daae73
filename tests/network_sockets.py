"""Which TCP/UDP sockets a process owns, from /proc (Linux): seen even when native code opened them."""

from __future__ import annotations

import os
from pathlib import Path

_TABLES = ("tcp", "tcp6", "udp", "udp6")
_TCP_STATES = {"0A": "LISTEN", "01": "ESTABLISHED", "02": "SYN_SENT"}


def inet_sockets_of(pid: int | str) -> list[str]:
    """One line per IPv4/IPv6 socket held open by ``pid`` ("self" for this process), with its state."""
    inodes = set()
    fd_dir = Path(f"/proc/{pid}/fd")
    for fd in os.listdir(fd_dir):
        try:
            target = os.readlink(fd_dir / fd)
        except OSError:
            continue  # closed meanwhile
        if target.startswith("socket:["):
            inodes.add(target[len("socket:[") : -1])
    found = []
    for table in _TABLES:
        lines = Path(f"/proc/{pid}/net/{table}").read_text().splitlines()[1:]
        for line in lines:
            fields = line.split()
            local, remote, state, inode = fields[1], fields[2], fields[3], fields[9]
            if inode in inodes:
                found.append(f"{table} {local} -> {remote} {_TCP_STATES.get(state, state)}")
    return found
