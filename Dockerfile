# NormLab image: API and worker (the command picks the role). The native
# kernels are compiled here against OpenBLAS, for any x86-64 (or ARM64) CPU:
# they pick AVX2/FMA or AVX-512 kernels at run time where the CPU has them.
FROM node:20-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 make g++ libopenblas-dev \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
COPY . .
# npm ci builds the native addon (install script) and the TypeScript (postinstall).
RUN npm ci && npm prune --omit=dev

FROM node:20-bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends libopenblas0-pthread \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /app
ENV NODE_ENV=production HOST=0.0.0.0 PORT=3000
COPY --from=build /app/package.json ./
COPY --from=build /app/node_modules ./node_modules
COPY --from=build /app/dist ./dist
COPY --from=build /app/build/Release/normlab_native.node ./build/Release/normlab_native.node
USER node
EXPOSE 3000
CMD ["node", "dist/src/main.js", "--role", "api"]
