#!/usr/bin/env python3
"""Regenerate testdata/hostile/: malformed .hpatch files for the reader.

Each file is built from a valid patch (BASE, unsigned, made by hpdiff) and
either broken after signing (the signature check must catch it) or broken
and then signed with the test key (the parser behind the signature must
catch it). tests/cli/hostile.sh checks each one's rejection message
against NAME.err. usage: make-hostile.py BASE HPSIGN OUTDIR KEY
"""
import struct
import subprocess
import sys

base_path, hpsign, out, key = sys.argv[1:5]
base = open(base_path, 'rb').read()
HDR = 24
meta_size, csize, usize = struct.unpack_from('<III', base, 12)
# Header flag UNWIND (bit 0): module records carry eh_off and eh_size.
UNWIND = struct.unpack_from('<H', base, 10)[0] & 1
meta = base[HDR:HDR + meta_size]
frame = base[HDR + meta_size:HDR + meta_size + csize]
payload = subprocess.run(['zstd', '-d', '-c'], input=frame,
                         capture_output=True, check=True).stdout
assert len(payload) == usize


def uv(v):
    """LEB128 encoding of unsigned v."""
    b = bytearray()
    while True:
        x = v & 0x7f
        v >>= 7
        b.append(x | (0x80 if v else 0))
        if not v:
            return bytes(b)


def sv(v):
    return uv(((v << 1) ^ (v >> 63)) & (2**64 - 1))


class Reader:
    def __init__(self, b):
        self.b, self.pos = b, 0

    def uv(self):
        v = shift = 0
        while True:
            x = self.b[self.pos]
            self.pos += 1
            v |= (x & 0x7f) << shift
            shift += 7
            if not x & 0x80:
                return v

    def sv(self):
        u = self.uv()
        return (u >> 1) ^ -(u & 1)

    def take(self, n):
        self.pos += n
        return self.b[self.pos - n:self.pos]


def parse(pl):
    """The payload as plain values (docs/FORMAT.md), for re-encoding."""
    r = Reader(pl)
    nr = r.uv()
    strtab = r.take(r.uv())
    mods = []
    for _ in range(nr):
        m = dict(name=r.uv(),
                 counts=[r.uv() for _ in range(8 if UNWIND else 6)])
        nf, nrel, ns = m['counts'][:3]
        m['funcs'] = []
        for _ in range(nf):
            name, flags = r.uv(), r.uv()
            new = flags & 1  # NEW: no old address, size or hash
            vals = [name, flags] + ([] if new else [r.uv(), r.uv()])
            vals += [r.uv(), r.uv()]
            m['funcs'].append((vals, b'' if new else r.take(8)))
        m['relocs'] = []
        off = 0  # offsets are stored as differences; kept absolute here
        for _ in range(nrel):
            off, tb = off + r.sv(), r.take(1)[0]
            sym = r.uv() if tb >> 4 == 2 else None
            m['relocs'].append([off, tb, sym, r.sv()])
        m['syms'] = [(r.uv(), r.uv()) for _ in range(ns)]
        m['text'] = r.take(m['counts'][3])
        m['data'] = r.take(m['counts'][4])
        mods.append(m)
    assert r.pos == len(pl)
    return strtab, mods


def encode(strtab, mods, counts_override=None):
    b = bytearray(uv(len(mods)) + uv(len(strtab)) + strtab)
    for m in mods:
        b += uv(m['name'])
        b += counts_override or b''.join(uv(c) for c in m['counts'])
        for vals, h in m['funcs']:
            b += b''.join(uv(v) for v in vals) + h
        prev = 0
        for off, tb, sym, val in m['relocs']:
            b += sv(off - prev) + bytes([tb]) + (uv(sym) if sym is not None
                                                 else b'') + sv(val)
            prev = off
        for n, v in m['syms']:
            b += uv(n) + uv(v)
        b += m['text'] + m['data']
    return bytes(b)


strtab, mods = parse(payload)
assert encode(strtab, mods) == payload


def assemble(payload_bytes, meta_bytes=meta, usize_claim=None):
    c = subprocess.run(['zstd', '-19', '-c', '-q',
                        f'--stream-size={len(payload_bytes)}'],
                       input=payload_bytes,
                       capture_output=True, check=True).stdout
    hdr = bytearray(base[:HDR])
    struct.pack_into('<III', hdr, 12, len(meta_bytes), len(c),
                     usize_claim if usize_claim is not None
                     else len(payload_bytes))
    return bytes(hdr) + meta_bytes + c


def write(name, data, sign):
    path = f'{out}/{name}.hpatch'
    open(path, 'wb').write(data)
    if sign:
        subprocess.run([hpsign, 'sign', '--key', key, path], check=True,
                       capture_output=True)


def signed_copy():
    path = f'{out}/.tmp'
    open(path, 'wb').write(base)
    subprocess.run([hpsign, 'sign', '--key', key, path], check=True,
                   capture_output=True)
    data = open(path, 'rb').read()
    subprocess.run(['rm', '-f', path])
    return data


good = signed_copy()
write('good', base, True)
write('unsigned', base, False)
# Truncated at field boundaries of a signed file: the trailer is gone or
# cut, so the file is unsigned or its signature bad.
for name, n in [('trunc-header', 20), ('trunc-meta', HDR + 10),
                ('trunc-payload', HDR + meta_size + csize // 2),
                ('trunc-trailer', len(good) - 30)]:
    write(name, good[:n], False)
# One flipped byte in each region of a signed file.
for name, off in [('flip-header', 9), ('flip-meta', HDR + 3),
                  ('flip-payload', HDR + meta_size + csize // 2),
                  ('flip-signature', len(good) - 40),
                  ('flip-keyid', len(good) - 80)]:
    b = bytearray(good)
    b[off] ^= 0x20
    write(name, bytes(b), False)
# Validly signed, malformed inside.
m0 = mods[0]
counts = list(m0['counts'])
counts[0] = 0x7fffffff  # functions, beyond the limit
write('huge-count', assemble(encode(strtab, mods, b''.join(
    uv(c) for c in counts))), True)
counts = list(m0['counts'])
counts[1] = 100000  # relocations: within the limit, cannot fit
write('count-lie', assemble(encode(strtab, mods, b''.join(
    uv(c) for c in counts))), True)
counts = list(m0['counts'])
write('overlong', assemble(encode(strtab, mods, uv(counts[0]) + b'\x80\x00'
    + b''.join(uv(c) for c in counts[1:]))), True)
saved = m0['relocs'][0][0]
m0['relocs'][0][0] = 0x00fffff0
write('reloc-out-of-range', assemble(encode(strtab, mods)), True)
m0['relocs'][0][0] = saved
saved = m0['relocs'][1][0]
m0['relocs'][1][0] = m0['relocs'][0][0] + 1  # a byte into the previous field
write('overlap', assemble(encode(strtab, mods)), True)
m0['relocs'][1][0] = saved
write('string-unterminated',
      assemble(encode(strtab[:-1] + b'x', mods)), True)
write('payload-trailing', assemble(payload + b'\0'), True)
write('bomb', assemble(payload, usize_claim=1 << 30), True)
write('size-lie', assemble(payload, usize_claim=usize + 100), True)
b = bytearray(assemble(payload))
b[8] = 9  # format version
write('version', bytes(b), True)
write('meta-trailing', assemble(payload, meta + b'\0'), True)
write('not-hpatch', b'\x7fELF' + b'\0' * 200, True)
# An unwind table (header flag UNWIND) whose first record claims more
# bytes than the table has: libgcc would walk off it.
if UNWIND:
    m = next(m for m in mods if m['counts'][7])
    text = bytearray(m['text'])
    struct.pack_into('<I', text, m['counts'][6], 0x7ffffff0)
    saved, m['text'] = m['text'], bytes(text)
    write('unwind-table', assemble(encode(strtab, mods)), True)
    m['text'] = saved
