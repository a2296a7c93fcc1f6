# The kubehatch step image: kubehatch and its dependencies, the examples/ package in
# /app, `kubehatch` on PATH (step pods run `kubehatch step`). The base of users' step
# images: put the workflow code in /app. For machines with Docker or podman (this
# repository's own machine uses hack/images/build-images.sh). From the top of the
# repository:
#   docker build -f hack/images/docker/step.Dockerfile -t localhost/kubehatch/step:TAG .
# Layers as in the registry-free builder: Python | dependencies | kubehatch | examples.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk/kubehatch sdk/kubehatch
COPY operator/kubehatch_operator operator/kubehatch_operator
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps -w /dist .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1 PYTHONPATH=/app
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"]))' > /tmp/requirements.txt \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt /tmp/pyproject.toml
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /dist/*.whl && rm -rf /dist
WORKDIR /app
COPY examples /app/examples
# Step pods run as 65532 (the operator sets it; "restricted" forbids root).
USER 65532:65532
ENTRYPOINT ["kubehatch"]
CMD ["--help"]
