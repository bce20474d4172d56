{#
  outcome_counts: by, grp, offered, accepted, rejected: offers, acceptances and rejections
  per value of each column in `by` of offers_made.sql, all in one pass over the offers.
  offers: the offers_made query; by: the columns to count by (product_id, rank, ...,
  then the fairness dimensions).
#}
-- GROUPING SETS: one pass over the offers; the offers join the week's customers and
-- recommendations, which one query per column redid. GROUPING() tells a column's NULL value
-- from the rows of the other columns' sets.
WITH offer_groups AS (
    SELECT
        {% for c in by %}
        CAST({{ c }} AS VARCHAR) AS g{{ loop.index0 }},
        {% endfor %}
        outcome
    FROM ({{ offers }}) o
)

SELECT
    CASE
        {% for c in by %}
        WHEN GROUPING(g{{ loop.index0 }}) = 0 THEN {{ lit(c) }}
        {% endfor %}
    END AS by,
    CASE
        {% for c in by %}
        WHEN GROUPING(g{{ loop.index0 }}) = 0 THEN g{{ loop.index0 }}
        {% endfor %}
    END AS grp,
    count(*) AS offered,
    count(CASE WHEN outcome = 'ACCEPTED' THEN 1 END) AS accepted,
    count(CASE WHEN outcome = 'REJECTED' THEN 1 END) AS rejected
FROM offer_groups o
GROUP BY GROUPING SETS ({% for c in by %}(g{{ loop.index0 }}){{ ", " if not loop.last }}{% endfor %})
