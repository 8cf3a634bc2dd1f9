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
HDR = 32
meta_size, csize = struct.unpack_from('<II', base, 16)
usize, = struct.unpack_from('<Q', base, 24)
meta = base[HDR:HDR + meta_size]
frame = base[HDR + meta_size:HDR + meta_size + csize]
payload = subprocess.run(['zstd', '-d', '-c'], input=frame,
                         capture_output=True, check=True).stdout
assert len(payload) == usize


def assemble(payload_bytes, meta_bytes=meta, usize_claim=None):
    c = subprocess.run(['zstd', '-19', '-c', '-q',
                        f'--stream-size={len(payload_bytes)}'],
                       input=payload_bytes,
                       capture_output=True, check=True).stdout
    hdr = bytearray(base[:HDR])
    struct.pack_into('<II', hdr, 16, len(meta_bytes), len(c))
    struct.pack_into('<Q', hdr, 24, usize_claim if usize_claim is not None
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
for name, n in [('trunc-header', 40), ('trunc-meta', HDR + 10),
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
MOD = 16  # first module record in the payload
p = bytearray(payload)
struct.pack_into('<I', p, MOD + 4, 0x7fffffff)
write('huge-count', assemble(bytes(p)), True)
p = bytearray(payload)
funcs_off, = struct.unpack_from('<I', p, MOD + 8)
struct.pack_into('<I', p, MOD + 32, funcs_off)  # text over the functions
write('overlap', assemble(bytes(p)), True)
p = bytearray(payload)
relocs_off, = struct.unpack_from('<I', p, MOD + 16)
struct.pack_into('<I', p, relocs_off, 0x00fffff0)
write('reloc-out-of-range', assemble(bytes(p)), True)
p = bytearray(payload)
strtab_off, strtab_size = struct.unpack_from('<II', p, 4)
p[strtab_off + strtab_size - 1] = ord('x')
write('string-unterminated', assemble(bytes(p)), True)
write('bomb', assemble(payload, usize_claim=1 << 30), True)
write('size-lie', assemble(payload, usize_claim=usize + 100), True)
b = bytearray(assemble(payload))
b[8] = 9  # format version
write('version', bytes(b), True)
write('meta-trailing', assemble(payload, meta + b'\0'), True)
write('not-hpatch', b'\x7fELF' + b'\0' * 200, True)
