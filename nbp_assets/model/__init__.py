"""The functional core of MOD-107: plain functions over DataFrames, no Dagster import."""
