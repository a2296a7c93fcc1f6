# localhost/kubehatch/python-base:bookworm for kind clusters: Debian bookworm with its
# python3, like the registry-free builder's image (hack/images/python-base/). The e2e
# tests run plain pods on it.
#   docker build -f hack/images/docker/python-base.Dockerfile -t localhost/kubehatch/python-base:bookworm .
FROM debian:bookworm-slim
RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 \
 && rm -rf /var/lib/apt/lists/*
ENV LANG=C.UTF-8 PYTHONUNBUFFERED=1
CMD ["python3"]
