/* Pure: who writes to MODEL/new, from what /proc says of a request's thread,
 * and which close(2) of the descriptor ends the input (SPEC 3: one
 * open..close, or open..write..read on the same fd, is one task). */
#ifndef GENFS_WRITER_H
#define GENFS_WRITER_H

#include <stdbool.h>

/* The process (thread group) of a /proc/TID/status text, or -1. */
long writer_tgid(const char *status);

/* The signal ending the thread of a /proc/TID/stat line: its exit_code field,
 * which the kernel sets before an exiting task closes its files. 0 when the
 * thread is not being killed (or the line says nothing). */
int writer_kill_signal(const char *stat);

/* What a close(2) of one copy of the descriptor does with the input written
 * so far. A copy is closed each time a child that inherited it exits and each
 * time a shell restores a redirected descriptor, before the last close. */
enum writer_close {
    WRITER_KEEP,   /* the input goes on: a later close or the read ends it */
    WRITER_SUBMIT, /* the input is whole: submit it; this close reports how it went */
    WRITER_DROP,   /* its opener is being killed: the input may be cut short, send nothing */
};

/* last: the last close (after which nobody can be told anything); by_opener:
 * by the process that opened new; read_write: opened O_RDWR, where the read
 * of the task id ends the input; kill_signal: the signal killing the closer.
 * A close by the opener ends the input (unless read-write); one by another
 * process (a child writing part of it) does not; the last close always does. */
enum writer_close writer_on_close(bool last, bool by_opener, bool read_write, int kill_signal);

#endif
