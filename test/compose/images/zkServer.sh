#!/bin/sh
# Minimal stand-in for the official image's zkServer.sh: `start-foreground` and `status`.
set -eu
data=${ZOO_DATA_DIR:-/data}
case "${1:-}" in
  start-foreground)
    mkdir -p "$data"
    cat >/tmp/zoo.cfg <<CFG
tickTime=${ZOO_TICK_TIME:-2000}
minSessionTimeout=${ZOO_MIN_SESSION_TIMEOUT:-1000}
maxSessionTimeout=30000
dataDir=$data
clientPort=2181
admin.enableServer=false
4lw.commands.whitelist=ruok,srvr,stat,mntr
CFG
    exec java -Xmx256m -cp /usr/share/java/zookeeper.jar:/usr/share/java/slf4j-simple.jar \
      org.apache.zookeeper.server.quorum.QuorumPeerMain /tmp/zoo.cfg
    ;;
  status)
    [ "$(echo ruok | nc 127.0.0.1 2181)" = imok ]
    ;;
  *)
    echo "usage: zkServer.sh start-foreground|status" >&2
    exit 2
    ;;
esac
