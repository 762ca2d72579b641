#!/usr/bin/env bats
# Model directories (mkdir/rmdir, names), adopting and forgetting tasks, and what a user may
# not do inside the mount: write to task files, rm, mv, ln, create files. SPEC 3.

load '/usr/lib/bats/bats-support/load'
load '/usr/lib/bats/bats-assert/load'
load 'genfs_helpers'

setup() {
    genfs_setup --time-scale 0.01
    mount_fast
}

teardown() {
    genfs_teardown
}

mount_fast() {
    genfs_mount -o "config=$(genfs_fast_config),schedule=adaptive" "$@"
}

# A listing of the whole mount (names, types, sizes of the fixed task files) to compare.
tree_of() {
    (cd "$MNT" && find . -path ./stats -prune -o -path ./log -prune -o -printf '%y %p\n' | sort)
}

@test "mkdir adds a model that works and survives a remount with the same state_dir" {
    run mkdir "$MNT/test-newmodel"
    assert_success
    [ -d "$MNT/test-newmodel" ]
    [ -f "$MNT/test-newmodel/new" ]
    run ls "$MNT"
    assert_line test-newmodel
    genfs_unmount
    mount_fast
    run ls "$MNT"
    assert_line test-newmodel
    [ -f "$MNT/test-newmodel/new" ]
    # The sim knows no such model, so a write reaches it and is refused as unknown.
    run gfs write "$MNT/test-newmodel/new" text:hello
    assert_output ENOENT
}

@test "mkdir of an existing model: EEXIST" {
    run mkdir "$MNT/test-image"
    assert_failure
    assert_output --partial "File exists"
}

@test "rmdir removes an empty model, also after a remount" {
    mkdir "$MNT/scratch"
    run rmdir "$MNT/scratch"
    assert_success
    [ ! -e "$MNT/scratch" ]
    run ls "$MNT"
    refute_line scratch
    genfs_unmount
    mount_fast
    [ ! -e "$MNT/scratch" ]
}

@test "rmdir of a model with tasks: ENOTEMPTY, the model and its task stay" {
    id=$(genfs_submit test-image '{"prompt": "keep me", "sim_duration_ms": 100}')
    run rmdir "$MNT/test-image"
    assert_failure
    assert_output --partial "Directory not empty"
    [ -d "$MNT/test-image/$id" ]
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
}

@test "bad model names: README, events, .hidden, 'a b', 'semi;colon' are refused (EINVAL or EEXIST)" {
    before=$(tree_of)
    for name in README events stats log; do
        run mkdir "$MNT/$name"
        assert_failure
        assert_output --partial "File exists"
    done
    for name in .hidden 'a b' 'semi;colon' 'star*'; do
        run mkdir "$MNT/$name"
        assert_failure
        assert_output --partial "Invalid argument"
        [ ! -d "$MNT/$name" ]
    done
    [ "$(tree_of)" = "$before" ]
}

@test "writes to state, result, error, prompt: Permission denied, contents unchanged" {
    id=$(genfs_submit test-image '{"prompt": "hands off", "sim_duration_ms": 100}')
    d=$MNT/test-image/$id
    timeout 60 cat "$d/result" >/dev/null
    want=$(cat "$d/result")
    for n in state result error prompt input.json; do
        run bash -c "echo x > '$d/$n'"
        assert_failure
        assert_output --partial "Permission denied"
        run bash -c "echo x >> '$d/$n'"
        assert_output --partial "Permission denied"
    done
    run python3 -c 'import os, sys
try:
    os.open(sys.argv[1], os.O_WRONLY)
except OSError as e:
    print(e.errno == 13)' "$d/state"
    assert_output True
    run truncate -s 0 "$d/state"
    assert_failure
    run cat "$d/state"
    assert_output success
    run cat "$d/result"
    assert_output "$want"
    run cat "$d/prompt"
    assert_output "hands off"
    run bash -c "echo x > '$MNT/README'"
    assert_output --partial "Permission denied"
}

@test "rm, mv, ln, ln -s, touch inside the mount: Operation not permitted, nothing changes" {
    id=$(genfs_submit test-image '{"prompt": "immovable", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    # files/ lists 0.png once it is whole: read it, so the tree holds still.
    timeout 60 cat "$MNT/test-image/$id/files/0.png" >/dev/null
    before=$(tree_of)
    check_eperm() {
        run "$@"
        assert_failure
        assert_output --partial "Operation not permitted"
    }
    check_eperm rm -f "$MNT/test-image/$id/state"
    check_eperm rm -f "$MNT/test-image/$id/result"
    check_eperm rm -f "$MNT/README"
    check_eperm rm -f "$MNT/test-image/new"
    check_eperm rm -f "$MNT/test-image/latest"
    check_eperm mv "$MNT/test-image/$id" "$MNT/test-image/renamed"
    check_eperm mv "$MNT/test-image/$id/state" "$MNT/test-image/$id/state2"
    check_eperm mv "$MNT/test-image" "$MNT/renamed-model"
    check_eperm ln "$MNT/test-image/$id/state" "$MNT/test-image/$id/hardlink"
    check_eperm ln -s "$id" "$MNT/test-image/symlink"
    check_eperm touch "$MNT/test-image/newfile"
    check_eperm touch "$MNT/newfile"
    [ "$(tree_of)" = "$before" ]
    run cat "$MNT/test-image/$id/state"
    assert_output success
    run readlink "$MNT/test-image/latest"
    assert_output "$id"
}

@test "rmdir of a task forgets it, also after a remount; the sim still has it" {
    id=$(genfs_submit test-image '{"prompt": "forget me", "sim_duration_ms": 100}')
    timeout 60 cat "$MNT/test-image/$id/result" >/dev/null
    run rmdir "$MNT/test-image/$id"
    assert_success
    [ ! -e "$MNT/test-image/$id" ]
    run ls "$MNT/test-image"
    refute_line "$id"
    genfs_unmount
    mount_fast
    [ ! -e "$MNT/test-image/$id" ]
    sim_task "$id" >/dev/null
}

@test "mkdir MODEL/<id> adopts a task submitted elsewhere; an unknown id: ENOENT" {
    body=$(sim_submit test-image '{"input": {"prompt": "from elsewhere", "sim_duration_ms": 200}}')
    id=$(sim_json 'd["data"]["taskId"]' <<<"$body")
    run mkdir "$MNT/test-image/$id"
    assert_success
    run timeout 60 cat "$MNT/test-image/$id/result"
    assert_success
    assert_output "$(sim_task "$id" | sim_json '"\n".join(d["result_urls"])')"
    run mkdir "$MNT/test-image/tk-no-such-task"
    assert_failure
    assert_output --partial "No such file or directory"
    [ ! -e "$MNT/test-image/tk-no-such-task" ]
}
