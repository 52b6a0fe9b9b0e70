# snapsync in a container: `docker build -t snapsync .`, then e.g.
#   docker run --rm -e AWS_ACCESS_KEY_ID -e AWS_SECRET_ACCESS_KEY -e AWS_REGION \
#     -e SNAPSYNC_STORE=s3://my-bucket/history -v snapsync-state:/var/lib/snapsync snapsync run
# The default command is the long-running worker. The state database lives in the volume at
# /var/lib/snapsync (a cache: a fresh volume rebuilds what it needs from the store).
FROM rust:1.95-slim-bookworm AS build
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src src
COPY migrations migrations
COPY benches benches
RUN cargo build --release --locked --bin snapsync \
 && strip target/release/snapsync

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates tzdata \
 && rm -rf /var/lib/apt/lists/* \
 && useradd --system --uid 10001 --home-dir /var/lib/snapsync --create-home snapsync
COPY --from=build /src/target/release/snapsync /usr/local/bin/snapsync
USER snapsync
WORKDIR /var/lib/snapsync
ENV SNAPSYNC_DB=/var/lib/snapsync/snapsync.db \
    SNAPSYNC_LOG_FORMAT=logfmt
VOLUME ["/var/lib/snapsync"]
ENTRYPOINT ["snapsync"]
CMD ["worker"]
