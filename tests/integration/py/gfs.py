#!/usr/bin/env python3
"""Probes for the genfs integration tests: each prints what a user of the mount sees.

  gfs.py write PATH SOURCE      one buffered file object: open(PATH, "wb"), write, close.
                                SOURCE: text:STRING | file:PATH | fill:N:CHAR (N bytes of CHAR).
                                Prints "ok" or the errno name (EFBIG, EINVAL, ...) of the first
                                error, from write or from close.  Exit 0 / 1.
  gfs.py rawwrite PATH SOURCE   the same with one os.write(2) on an O_WRONLY fd, then close(2).
  gfs.py submit PATH TEXT       open O_RDWR, os.write TEXT, os.read the id on the same fd:
                                prints "ok ID" or the errno name.
  gfs.py read PATH [nonblock]   open (O_NONBLOCK if asked), read everything: prints the bytes
                                read, or the errno name (EAGAIN, ETIMEDOUT, EIO, ...).
  gfs.py pollwait PATH SECONDS  open, read once (prints "before: TEXT"), poll(2) for POLLIN up
                                to SECONDS, then pread from 0 (prints "after: TEXT" or the errno
                                name) and "woke: yes|no" with the time it took.
  gfs.py mtime PATH             st_mtime_ns
  gfs.py size PATH              st_size
"""
import errno
import os
import select
import sys
import time


def ename(e):
    return errno.errorcode.get(e.errno, str(e.errno))


def source_bytes(spec):
    kind, _, rest = spec.partition(":")
    if kind == "text":
        return rest.encode()
    if kind == "file":
        with open(rest, "rb") as f:
            return f.read()
    if kind == "fill":
        n, _, ch = rest.partition(":")
        return (ch or "a").encode()[:1] * int(n)
    raise SystemExit("unknown source " + spec)


def cmd_write(path, spec):
    data = source_bytes(spec)
    try:
        f = open(path, "wb")
    except OSError as e:
        print(ename(e))
        return 1
    err = None
    try:
        f.write(data)
    except OSError as e:
        err = e
    try:
        f.close()
    except OSError as e:
        err = err or e
    if err:
        print(ename(err))
        return 1
    print("ok")
    return 0


def cmd_rawwrite(path, spec):
    data = source_bytes(spec)
    try:
        fd = os.open(path, os.O_WRONLY)
    except OSError as e:
        print(ename(e))
        return 1
    err = None
    try:
        n = os.write(fd, data)
        if n != len(data):
            os.write(fd, data[n:])
    except OSError as e:
        err = e
    try:
        os.close(fd)
    except OSError as e:
        err = err or e
    if err:
        print(ename(err))
        return 1
    print("ok")
    return 0


def cmd_submit(path, text):
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError as e:
        print(ename(e))
        return 1
    try:
        os.write(fd, text.encode())
        tid = os.read(fd, 256).decode().strip()
    except OSError as e:
        print(ename(e))
        return 1
    finally:
        try:
            os.close(fd)
        except OSError:
            pass
    print("ok " + tid)
    return 0


def read_all(fd):
    out = b""
    while True:
        b = os.read(fd, 65536)
        if not b:
            return out
        out += b


def cmd_read(path, mode=""):
    flags = os.O_RDONLY | (os.O_NONBLOCK if mode == "nonblock" else 0)
    try:
        fd = os.open(path, flags)
    except OSError as e:
        print("open " + ename(e))
        return 1
    try:
        sys.stdout.write(read_all(fd).decode())
        return 0
    except OSError as e:
        print(ename(e))
        return 1
    finally:
        os.close(fd)


def cmd_pollwait(path, secs):
    fd = os.open(path, os.O_RDONLY)
    try:
        before = os.pread(fd, 4096, 0).decode().strip() if not path.endswith("result") else ""
        print("before: " + before)
        sys.stdout.flush()
        p = select.poll()
        p.register(fd, select.POLLIN)
        t0 = time.monotonic()
        ev = p.poll(float(secs) * 1000)
        took = time.monotonic() - t0
        try:
            after = os.pread(fd, 4096, 0).decode().strip()
            print("after: " + after)
        except OSError as e:
            print("after: " + ename(e))
        print("woke: %s %.2f" % ("yes" if ev else "no", took))
        return 0
    finally:
        os.close(fd)


def main(argv):
    if len(argv) < 3:
        print(__doc__, file=sys.stderr)
        return 2
    cmd, args = argv[1], argv[2:]
    if cmd == "write":
        return cmd_write(*args)
    if cmd == "rawwrite":
        return cmd_rawwrite(*args)
    if cmd == "submit":
        return cmd_submit(*args)
    if cmd == "read":
        return cmd_read(*args)
    if cmd == "pollwait":
        return cmd_pollwait(*args)
    if cmd == "mtime":
        print(os.stat(args[0]).st_mtime_ns)
        return 0
    if cmd == "size":
        print(os.stat(args[0]).st_size)
        return 0
    print("unknown command " + cmd, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv))
