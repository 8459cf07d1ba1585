"""A classic pcap file held in memory: what the reader and the flows share."""

from __future__ import annotations

import struct
from dataclasses import dataclass

_REC = {True: struct.Struct("<IIII"), False: struct.Struct(">IIII")}


@dataclass
class PcapFile:
    path: str
    data: bytes
    little_endian: bool
    nanosecond: bool
    linktype: int
    snaplen: int

    @property
    def ts_div(self) -> float:
        return 1e9 if self.nanosecond else 1e6

    def ts_at(self, record_offset: int) -> float:
        """The timestamp of the record whose header starts at ``record_offset``."""
        s, f, _, _ = _REC[self.little_endian].unpack_from(self.data, record_offset)
        return s + f / self.ts_div
