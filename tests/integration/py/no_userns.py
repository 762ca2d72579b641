#!/usr/bin/env python3
"""no_userns.py UID CMD ARGS...: exec CMD as UID (and its group, no others) where unshare(2)
fails with EPERM, as on a system whose user namespaces are turned off.

Run as root: the seccomp filter is installed without no_new_privs (which root may do), so
setuid programs such as fusermount3 still work under it. x86_64 only (exit 77 elsewhere)."""
import ctypes
import os
import platform
import struct
import sys

if platform.machine() != "x86_64":
    sys.exit(77)

AUDIT_ARCH_X86_64 = 0xC000003E
NR_UNSHARE = 272
EPERM = 1
LD_ABS_W, JEQ_K, RET_K = 0x20, 0x15, 0x06
RET_ALLOW, RET_ERRNO = 0x7FFF0000, 0x00050000


def insn(code, jt, jf, k):
    return struct.pack("HBBI", code, jt, jf, k)


prog = b"".join([
    insn(LD_ABS_W, 0, 0, 4),                  # seccomp_data.arch
    insn(JEQ_K, 1, 0, AUDIT_ARCH_X86_64),
    insn(RET_K, 0, 0, RET_ALLOW),
    insn(LD_ABS_W, 0, 0, 0),                  # seccomp_data.nr
    insn(JEQ_K, 0, 1, NR_UNSHARE),
    insn(RET_K, 0, 0, RET_ERRNO | EPERM),
    insn(RET_K, 0, 0, RET_ALLOW),
])
buf = ctypes.create_string_buffer(prog, len(prog))
fprog = struct.pack("HxxxxxxQ", len(prog) // 8, ctypes.addressof(buf))
fbuf = ctypes.create_string_buffer(fprog, len(fprog))
libc = ctypes.CDLL(None, use_errno=True)
libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_void_p, ctypes.c_ulong, ctypes.c_ulong]
PR_SET_SECCOMP, SECCOMP_MODE_FILTER = 22, 2
if libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, fbuf, 0, 0) != 0:
    sys.exit("no_userns.py: cannot install the seccomp filter: " + os.strerror(ctypes.get_errno()))
uid = int(sys.argv[1])
os.setgroups([])
os.setgid(uid)
os.setuid(uid)
os.execvp(sys.argv[2], sys.argv[2:])
