# bayestumor as a PredictGBM growth model (https://github.com/BrainLesion/PredictGBM).
#
# PredictGBM's container contract (predict_gbm/prediction/docker_funcs.py and growth_model.py):
# the image is started without arguments, the input directory is mounted at /mlcube_io0 and the
# output directory at /mlcube_io1. The input holds Patient-X/X-{gm,wm,csf,tumorseg}.nii.gz
# (+ optional -pet, -t1c, -flair, -brain_mask, -adc); the model writes /mlcube_io1/X.nii.gz,
# a tumour-cell concentration in [0, 1] on the input grid. bayestumor writes the posterior mean
# density (float32), see `bayestumor predict-gbm --help`.
#
# Build, and hand to PredictGBM as a tar named after the algorithm (it loads
# predict_gbm/data/models/<name>.tar and runs <name>:latest):
#   docker build -t bayestumor:latest .
#   docker save bayestumor:latest -o bayestumor.tar
# Run by hand:
#   docker run --rm -v "$PWD/input:/mlcube_io0:ro" -v "$PWD/output:/mlcube_io1" bayestumor:latest
# Other options (a calibration configuration, kept runs) after the image name replace the
# default command, e.g. ... bayestumor:latest /mlcube_io0 /mlcube_io1 --config /mlcube_io0/c.json
# Runs on the CPU (JAX's CPU wheel).
FROM python:3.12-slim

ENV PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    MPLBACKEND=Agg

WORKDIR /opt/bayestumor
COPY pyproject.toml README.md ./
COPY bayestumor ./bayestumor
# Root, as PredictGBM starts its containers: the mounted output directory must be writable.
RUN pip install .

ENTRYPOINT ["bayestumor", "predict-gbm"]
CMD ["/mlcube_io0", "/mlcube_io1"]
