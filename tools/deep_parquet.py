#!/usr/bin/env python3
"""Writes a parquet file whose schema nests DEPTH groups deep (no data pages), by hand-encoding
its Thrift footer: the fuzz seed and bad-input case for the reader's nesting bound.

    python3 tools/deep_parquet.py DEPTH OUT.parquet
"""
import struct
import sys


def varint(n):
    out = bytearray()
    while True:
        b = n & 0x7F
        n >>= 7
        if n:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def zigzag(n):
    return varint((n << 1) ^ (n >> 63))


def field(delta, kind):
    return bytes([(delta << 4) | kind])   # compact protocol: i32 5, i64 6, binary 8, list 9, struct 12


def element(name, children=None, kind=None, repetition=1):
    """A SchemaElement: 1 type, 3 repetition_type, 4 name, 5 num_children."""
    out, last = bytearray(), 0
    if kind is not None:
        out += field(1, 5) + zigzag(kind)
        last = 1
    out += field(3 - last, 5) + zigzag(repetition)
    out += field(1, 8) + varint(len(name)) + name
    if children is not None:
        out += field(1, 5) + zigzag(children)
    return bytes(out + b"\x00")


def main():
    depth, path = int(sys.argv[1]), sys.argv[2]
    schema = [element(b"schema", children=1, repetition=0)]
    schema += [element(b"g", children=1) for _ in range(depth)]
    schema.append(element(b"text", kind=6))
    n = len(schema)
    header = bytes([0xF0 | 12]) + varint(n) if n >= 15 else bytes([(n << 4) | 12])
    meta = field(1, 5) + zigzag(1) + field(1, 9) + header + b"".join(schema)
    meta += field(1, 6) + zigzag(0) + field(1, 9) + bytes([0x0C]) + b"\x00"   # num_rows 0, no row groups
    with open(path, "wb") as f:
        f.write(b"PAR1" + meta + struct.pack("<I", len(meta)) + b"PAR1")


if __name__ == "__main__":
    main()
