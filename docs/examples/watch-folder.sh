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
# Needs inotify-tools. With -o notify=off genfs raises no events.
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MOUNT DEST" >&2
    exit 2
fi
mount=${1%/}
dest=$2
mkdir -p "$dest" || exit 1

inotifywait -m -q -r -e close_write --format '%w%f' "$mount" |
    while IFS= read -r path; do
        case $path in
        */files/*) ;;
        *) continue ;;
        esac
        rel=${path#"$mount"/}    # <model>/<taskId>/files/<n>.<ext>
        task=${rel%/files/*}     # <model>/<taskId>
        name=${rel##*/}          # <n>.<ext>
        mkdir -p "$dest/$task" || continue
        if cp "$path" "$dest/$task/.$name.part" && mv "$dest/$task/.$name.part" "$dest/$task/$name"; then
            echo "$dest/$task/$name"
        else
            rm -f "$dest/$task/.$name.part"
            echo "$0: cannot copy $path" >&2
        fi
    done
