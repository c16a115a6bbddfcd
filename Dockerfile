# citrine's container image: the batch binary (without the `query` feature) on a small runtime
# with the CA bundle, for AWS Batch (plan, shards, commit) or any container runtime.
#
#   docker build --build-arg CITRINE_BUILD=$(git rev-parse --short=12 HEAD) -t citrine .
#   docker run --rm citrine --version
#
# No secrets are built in: credentials come from the task role (or the environment) at run
# time, and the config from a mounted file or CITRINE_* variables.

FROM rust:1-slim-bookworm AS build
RUN apt-get update \
 && apt-get install -y --no-install-recommends gcc make \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
# The dependencies first, in a layer of their own: rebuilt only when Cargo.toml or Cargo.lock
# change, not at every change of the sources. Placeholder targets stand in for the sources,
# and what was built of them is removed so the real build below compiles citrine anew.
COPY Cargo.toml Cargo.lock build.rs ./
RUN mkdir -p src/bin benches \
 && echo 'fn main() {}' > src/main.rs \
 && echo 'fn main() {}' > src/bin/bootstrap.rs \
 && echo 'fn main() {}' > benches/hot_path.rs \
 && touch src/lib.rs \
 && cargo build --release --locked --bin citrine \
 && rm -rf src benches target/release/citrine target/release/deps/citrine-* \
      target/release/deps/libcitrine-* target/release/.fingerprint/citrine-*
COPY src src
COPY benches benches
COPY examples examples
# The commit named in every Parquet file's created_by (.git is not copied in).
ARG CITRINE_BUILD=unknown
RUN cargo build --release --locked --bin citrine \
 && strip target/release/citrine

FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates \
 && rm -rf /var/lib/apt/lists/*
COPY --from=build /src/target/release/citrine /usr/local/bin/citrine
# Not root; /work is the working folder a config can be mounted into.
RUN useradd --system --uid 10001 --home-dir /work --create-home citrine
USER 10001
WORKDIR /work
ENTRYPOINT ["citrine"]
CMD ["--help"]
