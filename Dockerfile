# syntax=docker/dockerfile:1
# The scalewise operator image: a static binary (musl, rustls; no OpenSSL, no libc) on an empty
# base, running as a non-root user. Build and push it with
#   make image IMAGE=<registry>/scalewise:<tag> && docker push <registry>/scalewise:<tag>
# (CI has no container engine and does not build this file.)

FROM rust:1.89-alpine AS build
# musl-dev: the C runtime ring's build links against; ca-certificates: copied into the image.
RUN apk add --no-cache musl-dev ca-certificates
WORKDIR /src
COPY Cargo.toml Cargo.lock ./
COPY src ./src
# On Alpine the host target is x86_64/aarch64-unknown-linux-musl, which links statically.
RUN cargo build --release --locked --bin scalewise \
 && strip target/release/scalewise \
 && ./target/release/scalewise --version

FROM scratch
# Trusted CAs for https Prometheus servers (the API server's CA comes from the service account).
COPY --from=build /etc/ssl/certs/ca-certificates.crt /etc/ssl/certs/ca-certificates.crt
COPY --from=build /src/target/release/scalewise /scalewise
ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
# The chart's podSecurityContext runs as this user too (65532, no home, no shell).
USER 65532:65532
EXPOSE 8080
ENTRYPOINT ["/scalewise"]
CMD ["run"]
