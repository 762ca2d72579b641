#!/usr/bin/env python3
"""Submit prompts to a genfs model and wait for all of them with poll(2).

    poll_tasks.py MOUNT/MODEL 'a red fox' 'a lighthouse at dawn' ...

One thread, no polling of the provider: genfs does that. Each
task's `state` file is opened once and registered with poll(2); it becomes
readable when its word changed since this descriptor last read it, so the
loop below wakes exactly at each state change of any task. A task's `result`
would do as well (it becomes readable once the task ended), and `select(2)`
or `selectors`/`asyncio` work the same way.

Prints one line per state change, then the result URLs (or the error) of
each task and its files (files/ lists a file once it is whole: the only wait
that sleeps is for those); exits 1 if any task failed.
"""
import os
import select
import sys
import time

FINAL = ("success", "failed")


def submit(model_dir, prompt):
    """What is written to MODEL/new before the read is one task; the read of
    the id on the same fd returns once the provider accepted it."""
    fd = os.open(os.path.join(model_dir, "new"), os.O_RDWR)
    try:
        os.write(fd, prompt.encode())
        return os.read(fd, 256).decode().strip()
    finally:
        os.close(fd)


def read_all(fd):
    """state and result are direct_io files: read them from offset 0 each time."""
    chunks, off = [], 0
    while True:
        b = os.pread(fd, 65536, off)
        if not b:
            return b"".join(chunks).decode()
        chunks.append(b)
        off += len(b)


def whole_files(task_dir, n, timeout=600):
    """The names under files/ once it lists n of them (one per result URL), or
    what it lists after timeout seconds (a download that failed for good)."""
    files = os.path.join(task_dir, "files")
    deadline = time.monotonic() + timeout
    while True:
        names = sorted(os.listdir(files))
        if len(names) >= n or time.monotonic() > deadline:
            return names
        time.sleep(0.2)


def main():
    if len(sys.argv) < 3:
        sys.exit("usage: poll_tasks.py MOUNT/MODEL PROMPT...")
    model_dir = sys.argv[1]
    tasks = {}  # fd of state -> task id
    poller = select.poll()
    for prompt in sys.argv[2:]:
        try:
            task_id = submit(model_dir, prompt)
        except OSError as e:  # EINVAL, EACCES, EDQUOT, EAGAIN, ...: see genfs(1)
            sys.exit("cannot submit %r: %s" % (prompt, e.strerror))
        fd = os.open(os.path.join(model_dir, task_id, "state"), os.O_RDONLY)
        tasks[fd] = task_id
        poller.register(fd, select.POLLIN)
        print("submitted %s: %s" % (task_id, prompt), flush=True)

    final = {}
    while len(final) < len(tasks):
        for fd, _ in poller.poll():
            state = read_all(fd).strip()  # reading re-arms the descriptor
            print("%s %s" % (tasks[fd], state), flush=True)
            if state in FINAL:
                final[tasks[fd]] = state
                poller.unregister(fd)
                os.close(fd)

    failed = 0
    for task_id, state in final.items():
        task_dir = os.path.join(model_dir, task_id)
        if state == "success":
            with open(os.path.join(task_dir, "result")) as f:
                urls = f.read().split()
            for url in urls:
                print("%s result %s" % (task_id, url))
            print("%s files %s" % (task_id, " ".join(
                os.path.join(task_dir, "files", n) for n in whole_files(task_dir, len(urls)))))
        else:
            failed += 1
            with open(os.path.join(task_dir, "error")) as f:
                print("%s error %s" % (task_id, f.read().strip()))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
