"""Hyper-parameter search for CMNet (KerasTuner): the λ grid of Eq. 10 (`tuning.grid`)."""
