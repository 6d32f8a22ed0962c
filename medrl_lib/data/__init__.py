"""Datasets in one common schema (see :mod:`medrl_lib.data.schema`)."""
