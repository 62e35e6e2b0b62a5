# The INSTRUCTOR image: the whole (private) course repository, solutions, hidden tests and the autograder
# included, with JupyterLab on port 8888 and every package from requirements.lock. Never give it to
# students: their image is built from the student edition (`make student`, then the Dockerfile in it).
#   docker build -t adl-instructor .
#   docker run --rm -p 8888:8888 -v "$PWD":/home/instructor/course adl-instructor
# The -v option mounts your checkout, so the gradebook and everything you edit stay on your disk.
# Docker's default profile does not let bubblewrap create namespaces: grade on the host, where it can.
FROM python:3.12-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ADL_PROFILE=full

RUN useradd --create-home --uid 1000 --shell /bin/bash instructor

WORKDIR /home/instructor/course
# Dependencies first, so that editing a notebook does not reinstall TensorFlow.
COPY requirements.lock ./
RUN python -m pip install -r requirements.lock

COPY --chown=instructor:instructor . .
RUN python -m pip install --no-deps . && rm -rf build *.egg-info

USER instructor
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/home/instructor/course", "--LabApp.default_url=/lab/tree/notebooks"]
