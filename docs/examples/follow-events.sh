#!/bin/sh
# follow-events.sh MOUNT DEST: follow MOUNT/events and copy the output files
# of every task that succeeds to DEST/<model>/<taskId>/ (model ids with
# slashes keep them: DEST/fal-ai/flux/dev/<taskId>/). Runs until killed.
#
# Each line of events is "<unix time> <model> <taskId> <state>". Opening
# events starts at "now": tasks that ended before are not copied (see
# watch-folder.sh for a watcher, or copy those with cp -r).
# Copies run in the background, so a slow download never delays reading
# events. files/ lists a file once it is whole: a copy waits until it lists
# one file per line of result (up to 10 minutes; a download that fails for
# good never shows up, and genfs's log says why).
set -u
if [ $# -ne 2 ]; then
    echo "usage: $0 MOUNT DEST" >&2
    exit 2
fi
mount=$1
dest=$2
mkdir -p "$dest" || exit 1

copy_task() { # model id
    src="$mount/$1/$2/files"
    out="$dest/$1/$2"
    mkdir -p "$out" || return 1
    n=$(grep -c '' "$mount/$1/$2/result")
    tries=0
    while [ "$(ls "$src" | wc -l)" -lt "$n" ] && [ "$tries" -lt 3000 ]; do
        sleep 0.2
        tries=$((tries + 1))
    done
    for f in "$src"/*; do
        [ -e "$f" ] || continue
        name=${f##*/}
        # copy under a temporary name, so DEST only ever holds whole files
        if cp "$f" "$out/.$name.part" && mv "$out/.$name.part" "$out/$name"; then
            echo "$out/$name"
        else
            rm -f "$out/.$name.part"
            echo "$0: cannot copy $f" >&2
        fi
    done
}

# cat reads events in large blocks; the shell's read then splits the lines.
# shellcheck disable=SC2002 # not "< events": a shell reads a byte at a time
cat "$mount/events" | while read -r _time model id state; do
    case $state in
    success) copy_task "$model" "$id" & ;;
    failed) echo "$0: $model/$id failed: $(cat "$mount/$model/$id/error")" >&2 ;;
    esac
done
