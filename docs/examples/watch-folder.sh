#!/bin/sh
# watch-folder.sh MOUNT DEST: copy every finished output file under MOUNT
# (whatever model, whoever submitted it) to DEST, as
# DEST/<model>/<taskId>/<n>.<ext>, using inotify. Runs until killed.
#
# genfs raises real inotify events on its mount: CREATE,ISDIR for a new task
# directory and for files/ when the task succeeded, and CREATE then
# CLOSE_WRITE for files/<n>.<ext> once it is whole. So "inotifywait -m -r -e
# close_write" reports each result file exactly when it can be copied, and
# the recursive watch follows new models, tasks and files/ directories by
# itself. (CLOSE_WRITE of state, result and error is filtered out below.)
# A recursive watch is set on a new directory only after its CREATE was
# read, so a task that ends at once can close its files before that: each
# new directory is therefore also scanned for files already there (a read
# of a file still downloading waits until it is whole).
# Needs inotify-tools. With -o notify=off genfs raises no events.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MOUNT DEST" >&2
    exit 2
fi
mount=${1%/}
dest=$2
mkdir -p "$dest" || exit 1

# copy PATH: MOUNT/<model>/<taskId>/files/<n>.<ext> to DEST, once.
copy() {
    rel=${1#"$mount"/}      # <model>/<taskId>/files/<n>.<ext>
    task=${rel%/files/*}    # <model>/<taskId>
    name=${rel##*/}         # <n>.<ext>
    [ -e "$dest/$task/$name" ] && return 0
    mkdir -p "$dest/$task" || return 1
    if cp "$1" "$dest/$task/.$name.part" && mv "$dest/$task/.$name.part" "$dest/$task/$name"; then
        echo "$dest/$task/$name"
    else
        rm -f "$dest/$task/.$name.part"
        echo "$0: cannot copy $1" >&2
    fi
}

inotifywait -m -q -r -e close_write -e create --format '%e|%w%f' "$mount" |
    while IFS='|' read -r events path; do
        case $events in
        *ISDIR*)
            find "$path" -path '*/files/*' -type f 2>/dev/null |
                while IFS= read -r f; do copy "$f"; done
            ;;
        *CLOSE_WRITE*)
            case $path in
            */files/*) copy "$path" ;;
            esac
            ;;
        esac
    done
