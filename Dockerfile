# syntax=docker/dockerfile:1
# Build stage: production dependencies only. The `node` runtime package that
# npm scripts use on machines with an older Node is a dev dependency, so it is
# left out: the image itself runs Node 24.
FROM node:24-bookworm-slim AS deps
WORKDIR /app
COPY package.json package-lock.json ./
RUN npm ci --omit=dev --no-audit --no-fund

FROM node:24-bookworm-slim
# /metrics has a port of its own, reachable from the container network (a
# Prometheus beside it) and published by nobody: EXPOSE names only PORT.
ENV NODE_ENV=production \
    HOST=0.0.0.0 \
    PORT=8787 \
    METRICS_PORT=9464 \
    METRICS_HOST=0.0.0.0 \
    DATA_DIR=/data
WORKDIR /app
COPY --from=deps /app/node_modules ./node_modules
COPY package.json ./
COPY src ./src
COPY schema ./schema
RUN mkdir -p /data && chown node:node /data
USER node
VOLUME ["/data"]
EXPOSE 8787
HEALTHCHECK --interval=10s --timeout=3s CMD node -e "fetch('http://127.0.0.1:'+process.env.PORT+'/healthz').then(r=>process.exit(r.ok?0:1),()=>process.exit(1))"
# Node 24 runs the TypeScript sources directly (type stripping): no build step.
# The Node flags are `npm start`'s (package.json): see docs/deployment.md.
CMD ["node", "--max-semi-space-size=32", "src/main.ts"]
