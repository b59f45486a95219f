#!/bin/sh
# The settings of devtools/pgbouncer.py (what the tests run), for a container: one server, a
# pool of POOL_SIZE server connections shared by every client, transaction by transaction.
set -eu
: "${DB_HOST:?DB_HOST must be set}" "${DB_USER:?DB_USER must be set}" "${DB_PASSWORD:?DB_PASSWORD must be set}"
conf=/tmp/pgbouncer
mkdir -p "$conf"
printf '"%s" "%s"\n' "$DB_USER" "$DB_PASSWORD" > "$conf/userlist.txt"
cat > "$conf/pgbouncer.ini" <<INI
[databases]
* = host=$DB_HOST port=${DB_PORT:-5432}

[pgbouncer]
listen_addr = 0.0.0.0
listen_port = 6432
unix_socket_dir =
auth_type = scram-sha-256
auth_file = $conf/userlist.txt
pool_mode = transaction
default_pool_size = ${POOL_SIZE:-20}
max_db_connections = ${POOL_SIZE:-20}
max_client_conn = 2000
ignore_startup_parameters = extra_float_digits, statement_timeout
server_reset_query =
INI
exec pgbouncer "$conf/pgbouncer.ini"
