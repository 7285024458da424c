# The registry-host image: the binary (the registry component inside), the C
# libraries it links, a non-root user and a volume for its data, on an empty
# base, so that building it pulls nothing. scripts/image.sh prepares the
# context (rootfs/) from a release build and runs `docker build`:
#
#   bash scripts/image.sh [TAG]                      # default TAG: registry-host:latest
#   docker run -d -p 5080:5080 -v registry-data:/data registry-host:latest
FROM scratch
COPY rootfs/ /
# COPY makes everything root's; the data directory must be the user's.
COPY --chown=10001:10001 data/ /data/
USER 10001:10001
VOLUME ["/data"]
EXPOSE 5080
ENV REGISTRY_LISTEN=0.0.0.0:5080 REGISTRY_DATA_DIR=/data
ENTRYPOINT ["/usr/local/bin/registry-host"]
