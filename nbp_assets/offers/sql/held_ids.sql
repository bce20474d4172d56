{#
  held_ids: the ACTIVITY_IDs `table` holds between lo and hi (the sink's duplicate check).
#}
SELECT ACTIVITY_ID FROM {{ table }} WHERE ACTIVITY_ID BETWEEN {{ lo | int }} AND {{ hi | int }}
