# syntax=docker/dockerfile:1
# The Switchboard gateway image: `docker build -t switchboard:0.1.0 .` from the
# repository root (BuildKit, the default builder since Docker 23).

# Build: the whole workspace (cargo needs every member to resolve it), one binary.
FROM rust:1-bookworm AS build
WORKDIR /src
COPY . .
# The caches keep crates.io downloads and compiled dependencies between builds; the
# binary is copied out because a cache mount is not part of the layer.
RUN --mount=type=cache,target=/usr/local/cargo/registry,sharing=locked \
    --mount=type=cache,target=/usr/local/cargo/git,sharing=locked \
    --mount=type=cache,target=/src/target,sharing=locked \
    cargo build --release --locked -p switchboard --bin switchboard \
    && install -D -m 0755 target/release/switchboard /out/switchboard

# Run: Debian slim, for glibc, the CA bundle (rediss:// and tls:// backplanes verify
# servers against it) and /bin/sleep (the Helm chart's preStop hook).
FROM debian:bookworm-slim
RUN apt-get update \
    && apt-get install -y --no-install-recommends ca-certificates \
    && rm -rf /var/lib/apt/lists/* \
    && groupadd --system --gid 10001 switchboard \
    && useradd --system --uid 10001 --gid 10001 --no-create-home \
       --home-dir /nonexistent --shell /usr/sbin/nologin switchboard \
    && install -d -o 10001 -g 10001 -m 0750 /data
COPY --from=build /out/switchboard /usr/local/bin/switchboard
# Numeric, so Kubernetes' runAsNonRoot can verify it without reading /etc/passwd.
USER 10001:10001
ENV SWITCHBOARD_BIND=0.0.0.0:8080
# The SQLite store's directory, owned by the user above (mount a volume there to keep
# conversations); the Helm chart mounts its claim at the same path.
ENV SWITCHBOARD_DATA_DIR=/data
EXPOSE 8080
ENTRYPOINT ["/usr/local/bin/switchboard"]
CMD ["serve"]
