# The course image: JupyterLab on port 8888 serving the course, every package from requirements.lock.
#   docker build -t adl-course .
#   docker run --rm -p 8888:8888 adl-course        (then open the URL with the token it prints)
FROM python:3.11-slim

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    TF_CPP_MIN_LOG_LEVEL=2 \
    ADL_PROFILE=full

RUN useradd --create-home --uid 1000 --shell /bin/bash student

WORKDIR /home/student/course
# Dependencies first, so that editing a notebook does not reinstall TensorFlow.
COPY requirements.lock ./
RUN python -m pip install -r requirements.lock

COPY --chown=student:student . .
RUN python -m pip install --no-deps . && rm -rf build *.egg-info

USER student
EXPOSE 8888
CMD ["jupyter", "lab", "--ip=0.0.0.0", "--port=8888", "--no-browser", "--ServerApp.root_dir=/home/student/course"]
