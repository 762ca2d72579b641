# A private PostgreSQL for team-mount tests: initdb in a fresh directory, a
# unix socket in it (no TCP), run as nobody (initdb refuses root).
#
#   pg_start     start it; exports PG_DIR and PG_URL (a libpq URL for role and database genfs)
#   pg_stop      stop it (fast); safe to call twice, and when it never started
#   pg_restart   stop and start again on the same data
#   pg_psql SQL  run SQL as genfs, unaligned, tuples only
#   pg_stop_now  stop it without waiting for clients (a crash-like outage)

# Debian's server binaries, of whichever major version is installed (newest).
PG_BIN="${PG_BIN:-$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -n1)}"

pg_as_owner() {
    if [ "$(id -u)" -eq 0 ]; then
        setpriv --reuid=nobody --regid=nogroup --clear-groups -- "$@"
    else
        "$@"
    fi
}

pg_start() {
    if [ -z "${PG_DIR:-}" ]; then
        # Outside the test's own directory: nobody must be able to reach it.
        PG_DIR=$(mktemp -d /tmp/genfs-pg.XXXXXX)
        chmod 755 "$PG_DIR"
        [ "$(id -u)" -ne 0 ] || chown nobody:nogroup "$PG_DIR"
        pg_as_owner "$PG_BIN/initdb" -D "$PG_DIR/data" -U genfs --auth=trust -E UTF8 \
            --no-sync >"$PG_DIR/initdb.log" 2>&1 || {
            cat "$PG_DIR/initdb.log" >&2
            return 1
        }
    fi
    export PG_DIR
    PG_URL="postgresql:///genfs?host=$PG_DIR&user=genfs"
    export PG_URL
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/server.log" -w -t 60 \
        -o "-k $PG_DIR -c listen_addresses='' -c fsync=off -c max_connections=50" start \
        >/dev/null || {
        cat "$PG_DIR/server.log" >&2
        return 1
    }
    psql -q "postgresql:///postgres?host=$PG_DIR&user=genfs" -c 'CREATE DATABASE genfs' \
        >/dev/null 2>&1 || true
}

pg_running() {
    [ -n "${PG_DIR:-}" ] && [ -f "$PG_DIR/data/postmaster.pid" ]
}

pg_stop() {
    pg_running || return 0
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m fast -w -t 60 stop >/dev/null 2>&1 ||
        pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w stop >/dev/null 2>&1 || true
}

pg_stop_now() {
    pg_as_owner "$PG_BIN/pg_ctl" -D "$PG_DIR/data" -m immediate -w -t 60 stop >/dev/null
}

pg_restart() {
    pg_stop
    pg_start
}

pg_psql() {
    psql -qAt "$PG_URL" -c "$1"
}

# pg_teardown: stop the server and remove its directory.
pg_teardown() {
    pg_stop
    if [ -n "${PG_DIR:-}" ] && [ -d "$PG_DIR" ]; then
        rm -rf "$PG_DIR"
    fi
    PG_DIR=
}
