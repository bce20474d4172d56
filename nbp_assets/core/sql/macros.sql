{#
  Shared macros of every SQL file (the renderer makes them global: call them by name).
  They are the spellings that give, in DuckDB and in Snowflake, exactly the floats numpy
  gives (docs/architecture.md):
  - dbl(v): a DOUBLE literal in exponent form (0.45e0); plain 0.45 is a DECIMAL in both engines.
  - round6(x): x rounded half to EVEN at 6 decimals, bit for bit np.round(x, 6): adding and
    subtracting 1.5 x 2^52 makes the FPU round to an integer in its own round-half-even mode
    (exact for |x| < 2^51 / 1e6; a negative that rounds to zero gives +0.0, numpy -0.0: the
    model rounds no negative). Both engines' ROUND round half away from zero.
  - clip01(x): np.clip(x, 0, 1) for a non-null x.
  - sum_left_to_right(terms): ((a + b) + c) ...: floating-point addition is not associative.
  - lit(s): a string literal; day(d), timestamp(d): dates computed in Python from the
    partition key, inlined so no engine-specific date arithmetic is needed.
#}
{% macro dbl(v) -%}
{% set text = '%r' % (v | float) %}{{ text if 'e' in text else text ~ 'e0' }}
{%- endmacro %}

{% macro round6(x) -%}
(((({{ x }}) * 1000000.0e0 + 6755399441055744.0e0) - 6755399441055744.0e0) / 1000000.0e0)
{%- endmacro %}

{% macro clip01(x) -%}
least(greatest({{ x }}, 0.0e0), 1.0e0)
{%- endmacro %}

{% macro sum_left_to_right(terms) -%}
{% if terms | length == 1 %}
{{ terms[0] }}
{%- else %}
({{ sum_left_to_right(terms[:-1]) }} + {{ terms[-1] }})
{%- endif %}
{%- endmacro %}

{% macro lit(s) -%}
'{{ s | replace("'", "''") }}'
{%- endmacro %}

{% macro day(d) -%}
DATE '{{ d.strftime('%Y-%m-%d') }}'
{%- endmacro %}

{% macro timestamp(d) -%}
{% if d.hour is defined %}
TIMESTAMP '{{ d.strftime('%Y-%m-%d %H:%M:%S') }}'
{%- else %}
TIMESTAMP '{{ d.strftime('%Y-%m-%d') }} 00:00:00'
{%- endif %}
{%- endmacro %}

{% macro within(relation, predicate) -%}
{% if predicate is none %}
{{ relation }}
{%- else %}
(SELECT * FROM {{ relation }} x WHERE {{ predicate }})
{%- endif %}
{%- endmacro %}
