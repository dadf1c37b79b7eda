"""Hyper-parameter search for CMNet (KerasTuner): the λ grid of Eq. 10 (`tuning.search`; its command line `python -m tuning.grid`)."""
