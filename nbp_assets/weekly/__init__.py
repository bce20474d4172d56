"""The weekly model (MOD-107) as SQL files and the statements each weekly step runs.

sql/        one file per model: eligible_pairs, peers, signals (and its report and
            suppressed-pairs counts), scores, top_n per engine, checks/ (one file per
            invariant); rendered by nbp_assets.core.sql
steps.py    the statements of each weekly step for a week (what the asset runs, what
            `compile` writes, what `sql_digest` hashes)
compile.py  `python -m nbp_assets compile --week W`: the week's exact SQL as files
"""
