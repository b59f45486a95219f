#!/bin/sh
# nginx in front of the app, configured from the environment: it closes what uvicorn never does
# (a client that stops half-way through its headers or its body), and it tells the app who the
# client is in X-Forwarded-For, replacing whatever the client sent there. The app's uvicorn
# believes that header from this proxy's address only (FORWARDED_ALLOW_IPS, deploy/compose.yaml).
set -eu
: "${UPSTREAM:?UPSTREAM must be set: the app, as host:port}"
conf=${PROXY_DIR:-/tmp/proxy}
mkdir -p "$conf"
cat > "$conf/nginx.conf" <<CONF
daemon off;
worker_processes ${WORKERS:-1};
pid $conf/nginx.pid;
error_log stderr warn;
events { worker_connections 4096; }
http {
    access_log off;  # the app logs every request, with its id
    server_tokens off;  # no version in "Server: nginx"
    client_body_temp_path $conf/body;
    proxy_temp_path $conf/proxy;
    fastcgi_temp_path $conf/fastcgi;
    uwsgi_temp_path $conf/uwsgi;
    scgi_temp_path $conf/scgi;
    # Headers, or a body, that stop arriving: the connection is closed after this long.
    client_header_timeout ${HEADER_TIMEOUT:-10}s;
    client_body_timeout ${BODY_TIMEOUT:-10}s;
    send_timeout 30s;
    keepalive_timeout 30s;
    client_max_body_size 0;  # the app's own limit answers, with its 413 and error body
    upstream app {
        server $UPSTREAM;
        keepalive 32;
    }
    server {
        listen ${LISTEN_PORT:-8080};
        location / {
            proxy_pass http://app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host \$host;
            proxy_set_header X-Forwarded-For \$remote_addr;  # the client's own, not its claim
            proxy_set_header X-Forwarded-Proto \$scheme;
            proxy_request_buffering off;  # a body streams through: the app counts it
            proxy_buffering off;  # server-sent events and JSON Lines reach the client as sent
            proxy_read_timeout 300s;
        }
    }
}
CONF
exec nginx -c "$conf/nginx.conf" -e stderr
