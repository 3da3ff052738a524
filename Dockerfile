# registrar — container image for the `registrar` CLI.
#
#   docker build -t registrar .                                    # official node:24 base (needs a registry)
#   docker build -t registrar --build-arg BASE_IMAGE=<local node image> .   # offline, e.g. test/compose/build-images.sh
#   docker run -d --name registrar --group-add "$(stat -c %g /var/run/docker.sock)" \
#     -v /var/run/docker.sock:/var/run/docker.sock:ro registrar --internal consul://consul:8500
#
# The image runs as the unprivileged user `registrar` (uid 10001). To read the Docker socket it needs the socket's
# group (`--group-add`, compose `group_add`), or talk to a socket proxy instead (DOCKER_HOST=tcp://proxy:2375).
# The base image must provide `node` (>= 22); the build stage also needs `pnpm` or corepack, the runtime stage uses
# `tini` as PID 1 when the base has it or can apt-get it. No `# syntax=` line: the builder's own frontend is used,
# so nothing is pulled when building offline.
ARG BASE_IMAGE=node:24-bookworm-slim

FROM ${BASE_IMAGE} AS build
ENV CI=true COREPACK_ENABLE_DOWNLOAD_PROMPT=0
WORKDIR /src
RUN command -v pnpm >/dev/null || corepack enable pnpm
# Dependencies first: this layer is reused until the lockfile changes.
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json .npmrc ./
RUN pnpm fetch
COPY tsconfig.base.json tsconfig.json ./
COPY scripts/bundle.ts ./scripts/bundle.ts
COPY packages ./packages
COPY test/package.json ./test/package.json
COPY test/servers/package.json ./test/servers/package.json
COPY bench/package.json ./bench/package.json
RUN pnpm install --offline --frozen-lockfile \
 && pnpm build \
 && pnpm --filter @registrar/cli deploy --prod --legacy /out/registrar \
 && pnpm --filter @registrar/consul-double deploy --prod --legacy /out/consul-double

# Shared runtime: tini as PID 1 (forwards signals, reaps zombies) and the unprivileged user.
FROM ${BASE_IMAGE} AS runtime
RUN if ! command -v tini >/dev/null; then \
      apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends tini \
      && rm -rf /var/lib/apt/lists/*; \
    fi \
 && groupadd --system --gid 10001 registrar \
 && useradd --system --uid 10001 --gid registrar --home-dir /nonexistent --no-create-home \
      --shell /usr/sbin/nologin registrar
ENV NODE_ENV=production
WORKDIR /app

# The Consul agent double (tests and offline demos only): docker build --target consul-double .
FROM runtime AS consul-double
COPY --from=build /out/consul-double /app
USER registrar
EXPOSE 8500
ENTRYPOINT ["tini", "--", "node", "/app/dist/main.js"]
CMD ["--host", "0.0.0.0", "--port", "8500"]
HEALTHCHECK --interval=10s --timeout=3s --start-period=5s --retries=3 \
  CMD ["node", "-e", "fetch('http://127.0.0.1:8500/v1/status/leader').then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))"]

# The product image (default target).
FROM runtime AS registrar
# The version label: builds may pass packages/cli/package.json's version; `pnpm version-packages` updates this default
# (scripts/sync-image-version.ts) and cli's version.test.ts keeps it equal.
ARG VERSION=0.1.0
ARG REVISION=unknown
LABEL org.opencontainers.image.title="registrar" \
      org.opencontainers.image.description="Mirrors Docker containers' services into Consul, etcd or ZooKeeper" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.documentation="https://github.com/registrar/registrar/blob/main/docs/deployment.md"
COPY --from=build /out/registrar /app
# Logs as JSON on stderr; metrics and health on 9105 so the HEALTHCHECK below has something to probe.
# glibc: one malloc arena (not 8 per core: one thread does the work), and buffers of 32 KiB or more mapped and
# unmapped on free instead of leaving holes in the heap (the socket reads of a burst): with the daemon's quiet
# GC, private memory 10 s after a 20,000-event churn is ~70 MiB instead of ~110 (docs/benchmarks.md). Compiled
# code cached in the container's own /tmp: a restart loads its modules with ~10 % less CPU.
ENV REGISTRAR_LOG_FORMAT=json \
    REGISTRAR_METRICS_ADDR=0.0.0.0:9105 \
    MALLOC_ARENA_MAX=1 \
    MALLOC_MMAP_THRESHOLD_=32768 \
    NODE_COMPILE_CACHE=/tmp/registrar-compile-cache
USER registrar
EXPOSE 9105
# node handles SIGTERM/SIGINT itself (graceful deregistration); tini forwards them and reaps zombies.
# Node's default heap sizing: --optimize-for-size would save ~20 MiB more after a churn for ~2.2x CPU per event.
ENTRYPOINT ["tini", "--", "node", "/app/bin/registrar.js"]
CMD ["--help"]
# /healthz on whatever REGISTRAR_METRICS_ADDR says (a wildcard host is probed on loopback).
HEALTHCHECK --interval=10s --timeout=3s --start-period=10s --retries=3 \
  CMD ["node", "/app/dist/healthcheck.js"]
