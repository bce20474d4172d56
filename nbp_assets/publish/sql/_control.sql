{#
  The control group's hash, one spelling for DuckDB and Snowflake: md5 of the salt, ':' and
  the party_id (both engines return 32 lower-case hex digits), its first 8 hex digits read as
  an integer in [0, 2^32) digit by digit (the engines parse hex differently; position() and
  substr() are the same in both), compared with the share's threshold floor(share x 2^32).
  Python's int(hashlib.md5(f"{salt}:{party_id}".encode()).hexdigest()[:8], 16) is the same
  number (nbp_assets/publish/control.py, test_control_group.py).
#}
{% macro control_md5(salt, party_id) -%}
md5({{ lit(salt ~ ":") }} || {{ party_id }})
{%- endmacro %}

{% macro control_bucket(digest) -%}
(
{%- for i in range(8) %}
{{ " + " if not loop.first }}(position(substr({{ digest }}, {{ i + 1 }}, 1) IN '0123456789abcdef') - 1) * {{ 16 ** (7 - i) }}
{%- endfor %}
)
{%- endmacro %}
