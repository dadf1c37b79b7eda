"""Installs cmnet-keras (`pip install -e .`)."""

import pathlib

from setuptools import find_packages, setup

HERE = pathlib.Path(__file__).parent

setup(
    name="cmnet-keras",
    version="0.1.0",
    description="CMNet (Contrastive Magnification Network, AAAI 2023) for micro-expression recognition in Keras 3",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(include=["cmnet_keras", "cmnet_keras.*", "tuning", "tuning.*"]),
    install_requires=[
        line.strip()
        for line in (HERE / "requirements.txt").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ],
    entry_points={
        "console_scripts": [
            "cmnet-preprocess=cmnet_keras.preprocess:main",
            "cmnet-train=cmnet_keras.train:main",
            "cmnet-ablation=cmnet_keras.ablation:main",
            "cmnet-merge=cmnet_keras.merge:main",
            "cmnet-export=cmnet_keras.export:main",
            "cmnet-predict=cmnet_keras.predict:main",
            "cmnet-embedded=cmnet_keras.data.embedded:main",
            "cmnet-grid=tuning.grid:main",
        ]
    },
)
