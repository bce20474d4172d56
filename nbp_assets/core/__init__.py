"""Pieces every domain shares: the .sql loader and renderer (core/sql.py, core/sql/macros.sql)."""
