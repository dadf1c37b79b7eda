"""Installs cmnet-keras: `pip install -e ".[cpu]"` or `pip install -e ".[gpu]"`.

Version ranges only: the exact, tested versions are in constraints.txt
(`pip install -c constraints.txt -e ".[cpu,preprocess,tuning,test]"`). No TensorFlow
build is forced: the `cpu` and `gpu` extras choose one. `cmnet_keras.optional`
names the extra of each optional import; keep the two in step.
"""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

EXTRAS = {
    # tf.data input pipeline, tf.distribute, SavedModel export (the model alone runs on JAX or PyTorch too).
    "cpu": ["tensorflow-cpu>=2.21,<3"],
    "gpu": ["tensorflow[and-cuda]>=2.21,<3"],
    # Readers and face alignment (cmnet_keras.preprocess, cmnet_keras.predict, the embedded dataset).
    "preprocess": [
        "mediapipe>=1.2,<2",
        "opencv-contrib-python>=4.10,<6",  # what mediapipe depends on: one OpenCV distribution, not two
        "scikit-image>=0.24,<1",
        "openpyxl>=3.1,<4",
        "tqdm>=4.60,<5",
    ],
    # lambda grid search (tuning.grid); keras-tuner needs tensorboard to run a trial.
    "tuning": ["keras-tuner>=1.4,<2", "tensorboard>=2.16,<3"],
    "test": [
        "pytest>=8,<10",
        "jax>=0.10,<1",
        "jaxlib>=0.10,<1",
        "torch>=2.13,<3",
    ],
}

setup(
    name="cmnet-keras",
    version="0.1.0",
    description="CMNet (Contrastive Magnification Network, AAAI 2023) for micro-expression recognition in Keras 3",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.11",
    packages=find_packages(include=["cmnet_keras", "cmnet_keras.*", "tuning", "tuning.*"]),
    package_data={"cmnet_keras.data": ["megc2019_composite.csv"]},  # the MEGC 2019 clip list (its header says whence)
    install_requires=[
        "keras>=3.15,<4",
        "numpy>=2.0,<3",
        "pandas>=3.0,<4",
        "matplotlib>=3.8,<4",
        "scipy>=1.13,<2",
        "scikit-learn>=1.5,<2",
    ],
    extras_require=EXTRAS,
    entry_points={
        "console_scripts": [
            "cmnet-preprocess=cmnet_keras.commands.preprocess:main",
            "cmnet-train=cmnet_keras.commands.train:main",
            "cmnet-ablation=cmnet_keras.commands.ablation:main",
            "cmnet-merge=cmnet_keras.commands.merge:main",
            "cmnet-export=cmnet_keras.commands.export:main",
            "cmnet-predict=cmnet_keras.commands.predict:main",
            "cmnet-embedded=cmnet_keras.commands.embedded:main",
            "cmnet-grid=cmnet_keras.commands.grid:main",
        ]
    },
)
