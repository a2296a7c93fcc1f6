# The kubehatch operator image, for machines with Docker or podman (this repository's
# own machine builds it without either: hack/images/build-images.sh). From the top of
# the repository:
#   docker build -f hack/images/docker/operator.Dockerfile -t localhost/kubehatch/operator:TAG .
# Layers as in the registry-free builder: Python | dependencies | kubehatch.
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS wheel
WORKDIR /src
COPY pyproject.toml README.md ./
COPY sdk/kubehatch sdk/kubehatch
COPY operator/kubehatch_operator operator/kubehatch_operator
RUN pip wheel --no-cache-dir --disable-pip-version-check --no-deps -w /dist .

FROM ${PYTHON_IMAGE}
ENV PYTHONUNBUFFERED=1 PYTHONDONTWRITEBYTECODE=1
# The dependencies first (from pyproject.toml alone): code changes keep this layer.
COPY pyproject.toml /tmp/pyproject.toml
RUN python3 -c 'import tomllib; p = tomllib.load(open("/tmp/pyproject.toml", "rb"))["project"]; \
print("\n".join(p["dependencies"] + p["optional-dependencies"]["operator"]))' > /tmp/requirements.txt \
 && pip install --no-cache-dir --disable-pip-version-check -r /tmp/requirements.txt \
 && rm /tmp/requirements.txt /tmp/pyproject.toml
COPY --from=wheel /dist /dist
RUN pip install --no-cache-dir --disable-pip-version-check --no-deps /dist/*.whl && rm -rf /dist
# Non-root, as the chart's "restricted" pod security context expects.
USER 65532:65532
ENTRYPOINT ["python3", "-m", "kubehatch_operator"]
