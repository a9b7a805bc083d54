# The corral worker image: compiled TypeScript on Node 20, run as an unprivileged user.
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
COPY package.json package-lock.json .npmrc ./
RUN npm ci --no-audit --no-fund
COPY tsconfig.json ./
COPY src ./src
# tsc emits no .sql: the registry migrations are copied beside the compiled migrate.js.
RUN npx tsc -p tsconfig.json --outDir dist --rootDir . --noEmit false \
  && cp -r src/registry/migrations dist/src/registry/migrations \
  && npm prune --omit=dev

FROM node:20.20.2-bookworm-slim
ENV NODE_ENV=production
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
# Workflows are bundled from source at worker start, so ship the sources as well.
COPY --from=build /app/src ./src
COPY package.json ./
USER node
ENTRYPOINT ["node", "dist/src/cli/main.js"]
CMD ["worker"]
