{#
  wrong_model_version (check model_version_on_every_row): rows whose model_version is not the
  week's.

  ranked: the week's top 3; model_version: the one every row must carry.
#}
SELECT party_id, rank, model_version FROM {{ ranked }} WHERE model_version <> {{ lit(model_version) }}
