# etcd, ZooKeeper and HAProxy from Debian, standing in for the official images the compose demo uses.
# One image for all three keeps the apt download to a single, cached layer.
ARG BASE_IMAGE=registrar-local/node:24
FROM ${BASE_IMAGE}
ENV DEBIAN_FRONTEND=noninteractive
RUN apt-get update \
 && apt-get install -y --no-install-recommends etcd-server etcd-client zookeeper haproxy \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb
# The official zookeeper image runs `zkServer.sh start-foreground`; this wrapper gives the same entry point.
COPY zkServer.sh /usr/local/bin/zkServer.sh
