# registrar as a container: docker run -v /var/run/docker.sock:/var/run/docker.sock registrar etcd://etcd:2379/services
# BASE_IMAGE is a build argument so the image can be built offline from a locally provided Node 24 base.
ARG BASE_IMAGE=node:24-bookworm-slim
FROM ${BASE_IMAGE} AS build
WORKDIR /src
RUN corepack enable 2>/dev/null || npm install -g pnpm@10.34.8
COPY pnpm-lock.yaml pnpm-workspace.yaml package.json tsconfig.base.json tsconfig.json ./
COPY packages ./packages
COPY test/package.json ./test/package.json
RUN pnpm install --frozen-lockfile && pnpm build \
 && pnpm --filter @registrar/cli deploy --prod --legacy /out

FROM ${BASE_IMAGE}
LABEL org.opencontainers.image.title="registrar" \
      org.opencontainers.image.description="Mirrors Docker containers' services into Consul, etcd or ZooKeeper" \
      org.opencontainers.image.licenses="MIT"
WORKDIR /app
COPY --from=build /out /app
ENV NODE_ENV=production
ENTRYPOINT ["node", "/app/dist/main.js"]
