#!/bin/sh
# Start blobd in the foreground on 127.0.0.1:8080 with its data under
# ./var/blobd, and say how to reach it.
set -eu
data=${BLOBD_DATA:-./var/blobd}
listen=${BLOBD_LISTEN:-127.0.0.1:8080}
mkdir -p "$data"
echo "blobd: listening on http://$listen, data in $data"
if [ -z "${BLOBD_OPERATOR_TOKEN:-}" ]; then
    echo "blobd: the operator token is in $data/operator.token (created at first start);"
    echo "       send it as: curl -H \"Authorization: Bearer \$(cat $data/operator.token)\" ..."
fi
echo "blobd: try  curl http://$listen/healthz ; stop with Ctrl-C"
exec ./build/blobd --data "$data" --listen "$listen" ${BLOBD_CONFIG:+--config "$BLOBD_CONFIG"}
