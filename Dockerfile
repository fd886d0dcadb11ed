# imgate container: the same build steps as CI (./dev installs cmake, nasm, libaom-dev and
# libheif-dev; libaom is linked statically, libheif is not: the runtime image has libheif1,
# which brings the HEVC decoder; cargo builds),
# then a slim runtime running as a non-root user with the example config.
#   docker build -t imgate .
#   docker run -p 8080:8080 -p 9090:9090 -e IMGATE_ORIGIN=https://www.example.com imgate

FROM rust:1-slim-bookworm AS build
RUN apt-get update -qq && apt-get install -y -qq cmake nasm pkg-config g++ make libaom-dev \
    libheif-dev >/dev/null
WORKDIR /src
COPY . .
RUN cargo build --release --bin imgate && target/release/imgate --validate conf/*.yaml

FROM debian:bookworm-slim
RUN apt-get update -qq && apt-get install -y -qq --no-install-recommends libheif1 >/dev/null \
    && rm -rf /var/lib/apt/lists/*
RUN useradd --system --uid 10001 --home-dir /nonexistent --shell /usr/sbin/nologin imgate \
    && mkdir -p /var/cache/imgate && chown imgate /var/cache/imgate
COPY --from=build /src/target/release/imgate /usr/local/bin/imgate
COPY conf/ /etc/imgate/
ENV IMGATE_LISTEN=0.0.0.0:8080 \
    IMGATE_ADMIN_LISTEN=0.0.0.0:9090 \
    IMGATE_CACHE_DIR=/var/cache/imgate
USER imgate
EXPOSE 8080 9090
HEALTHCHECK CMD ["/bin/sh", "-c", "exec 3<>/dev/tcp/127.0.0.1/9090"]
ENTRYPOINT ["/usr/local/bin/imgate"]
CMD ["--config", "/etc/imgate/imgate.yaml"]
